"""Cross-file context: import resolution, declaration extraction, the debounced workspace watcher."""

from __future__ import annotations

from pathlib import Path

import pytest
from waiting import eventually

from sdls.lsp.prompt import declarations_header
from sdls.lsp.workspace_index import DeclarationIndex, declarations, imported_paths


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "geometry.py").write_text(
        "import math\n\nclass Point:\n    x: float\n    def norm(self) -> float:\n        return 0.0\n\n"
        "def distance(a: Point, b: Point) -> float:\n    return math.hypot(a.x - b.x, 0)\n"
    )
    (tmp_path / "pkg" / "units.py").write_text("METERS = 1.0\n\ndef to_feet(m):\n    return m * 3.28\n")
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "api.ts").write_text(
        "export function get(url: string): Promise<string> { return fetch(url) }\n"
    )
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.py").write_text("def hidden(): pass\n")
    return tmp_path


def check(source: str, language: str, path, roots, expected: list[str]) -> None:
    found = imported_paths(source, language, path, roots)
    assert [str(p.relative_to(roots[0])) for p in found] == expected


def test_python_imports_resolve_to_workspace_files(workspace):
    main = workspace / "main.py"
    check(
        "from pkg.geometry import Point\nimport pkg.units, os\n",
        "python",
        main,
        [workspace],
        ["pkg/geometry.py", "pkg/units.py"],
    )
    check(
        "from . import units\nfrom .geometry import distance\n",
        "python",
        workspace / "pkg" / "x.py",
        [workspace],
        ["pkg/__init__.py", "pkg/units.py", "pkg/geometry.py"],
    )
    check("import numpy\nfrom json import loads\n", "python", main, [workspace], [])  # not in the workspace


def test_relative_js_imports_resolve_with_extensions(workspace):
    check("import { get } from './api'\n", "typescript", workspace / "web" / "app.ts", [workspace], ["web/api.ts"])


def test_declarations_are_signatures_only(workspace):
    decls = declarations((workspace / "pkg" / "geometry.py").read_text(), "python")
    assert decls == [
        "class Point:\n    x: float\n    def norm(self) -> float: ...",
        "def distance(a: Point, b: Point) -> float: ...",
    ]
    assert declarations("export function get(url: string): string { return url }\n", "typescript") == [
        "export function get(url: string): string { ... }"
    ]


def test_context_and_header_for_a_document(workspace):
    index = DeclarationIndex([workspace])
    main = workspace / "main.py"
    context = index.context_for("from pkg.geometry import distance\n", main, "python")
    assert [name for name, _ in context] == ["pkg/geometry.py"]
    header = declarations_header("python", context, 1000)
    assert header.startswith("# from pkg/geometry.py:\nclass Point:") and "def distance(" in header
    assert declarations_header("python", context, 20) == ""  # over budget: nothing half-written


def test_unsaved_editor_buffer_wins_over_disk(workspace):
    units = workspace / "pkg" / "units.py"
    index = DeclarationIndex([workspace], open_text=lambda p: "def to_meters(ft): ...\n" if p == units else None)
    assert index.declarations_of(units) == ["def to_meters(ft): ..."]


def test_watcher_invalidates_changed_files_after_a_debounce_and_ignores_node_modules(workspace):
    index = DeclarationIndex([workspace], debounce_s=0.1)
    units, dep = workspace / "pkg" / "units.py", workspace / "node_modules" / "dep.py"
    assert index.declarations_of(units)[-1] == "def to_feet(m): ..."
    assert index.declarations_of(dep) == ["def hidden(): ..."]  # cached: only the watcher drops it
    index.start_watching()
    try:
        dep.write_text("def changed(): pass\n")
        units.write_text("def to_feet(m, precise=False):\n    return m * 3.28084\n")
        # One watcher thread sees the events in order: once the second file is dropped, the first
        # one's event has been handled too.
        eventually(lambda: index.invalidations, "the watcher to drop the changed file")
        assert index.declarations_of(units) == ["def to_feet(m, precise=False): ..."]
        assert index.invalidations == 1 and index.declarations_of(dep) == ["def hidden(): ..."]  # ignored
    finally:
        index.stop()


def test_server_builds_the_header_from_the_document_imports(workspace):
    from sdls.lsp.language_server import create_server

    server = create_server()
    server.index = DeclarationIndex([workspace])
    doc = server.docs.open((workspace / "main.py").as_uri(), "python", 1, "from pkg import units\nx = units.\n")
    header = server.cross_file_header(doc)
    assert header == "# from pkg/units.py:\nMETERS = 1.0\ndef to_feet(m): ...\n\n"
    server.settings.completion.cross_file = False
    assert server.cross_file_header(doc) == ""


@pytest.fixture
def fenced(tmp_path, monkeypatch):
    """A workspace, a secret file beside it (outside), and a record of every file the index opens."""
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "web" / "app").mkdir(parents=True)
    outside.mkdir()
    secret_py, secret_js = outside / "secret.py", outside / "secret.js"
    secret_py.write_text("def leaked_password(): ...\n")
    secret_js.write_text("export function leakedToken() { return 1 }\n")
    (tmp_path / "secret.py").write_text("def leaked_password(): ...\n")
    (root / "pkg" / "link.py").symlink_to(secret_py)  # a symlink inside that points outside
    (root / "pkg" / "ok.py").write_text("def fine(): ...\n")
    opened: list[Path] = []
    real_read_text = Path.read_text

    def read_text(self, *args, **kwargs):
        opened.append(self.resolve())
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    return root, outside, opened


def test_imports_that_lead_out_of_the_workspace_are_never_opened(fenced):
    root, outside, opened = fenced
    index = DeclarationIndex([root])
    module = root / "pkg" / "sub" / "mod.py"
    python = "from ...outside.secret import leaked_password\nfrom .... import secret\nfrom ..link import x\n"
    python += "from .. import ok\n"
    assert [name for name, _ in index.context_for(python, module, "python")] == ["pkg/ok.py"]
    assert imported_paths(python, "python", module, [root]) == [(root / "pkg" / "ok.py").resolve()]
    js = "import { leakedToken } from '../../../outside/secret.js'\nimport x from '../../../outside/secret'\n"
    assert index.context_for(js, root / "web" / "app" / "main.ts", "typescript") == []
    assert index.declarations_of(outside / "secret.py") == []  # asked directly: still not read
    assert index.declarations_of(root / "pkg" / "link.py") == []
    assert not any(p.is_relative_to(outside) or p.name == "secret.py" for p in opened), opened
