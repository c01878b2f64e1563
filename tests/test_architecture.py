"""Architecture invariants (see ARCHITECTURE.md), checked on the source so they stay true."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LSP_PACKAGES = ("lsprotocol", "pygls", "pytest_lsp")


def imports_of(folder: str) -> dict[str, set[str]]:
    """Top-level package names imported by each .py file under a folder (relative imports skipped)."""
    found = {}
    for path in (ROOT / folder).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path} imports {sorted(names & set(forbidden))}"
        for path, names in imports_of(folder).items()
        if names & set(forbidden)
    ]


def test_model_never_imports_sdls_or_lsp():
    assert offenders("model", ("sdls", *LSP_PACKAGES)) == []


def test_kernels_import_neither_sdls_nor_the_model():
    assert offenders("kernels", ("sdls", "sdls_model", *LSP_PACKAGES)) == []


def test_only_the_lsp_layer_knows_lsp():
    allowed = ("sdls/lsp/", "sdls/demo.py")
    leaks = [o for o in offenders("sdls", LSP_PACKAGES) if not o.startswith(allowed)]
    assert leaks == []


# The three distributions: (project folder, import name). Each import name is the path of its folder.
DISTRIBUTIONS = ((ROOT, "sdls"), (ROOT / "model", "sdls_model"), (ROOT / "kernels", "sdls_kernels"))


def test_import_names_are_the_paths_of_their_folders():
    import sdls
    import sdls_kernels
    import sdls_model

    assert Path(sdls_model.__file__).parent == ROOT / "model" / "sdls_model"
    assert Path(sdls_kernels.__file__).parent == ROOT / "kernels" / "sdls_kernels"
    assert Path(sdls.__file__).parent == ROOT / "sdls"


@pytest.mark.parametrize(
    "alias", ["model.sdls_model.jobs", "kernels.sdls_kernels.dispatch", "model.jobs", "kernels.dispatch"]
)
def test_no_file_imports_under_a_second_name(alias):
    """From the repository root model/ and kernels/ are folders, not packages (model/ once was, and
    `model.jobs` beside `sdls_model.jobs` made two InfillJob classes). Python still sees them as
    namespace packages there, so each package refuses to load under any name but its own."""
    proc = subprocess.run([sys.executable, "-c", f"import {alias}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0, f"{alias} imported"
    assert "ModuleNotFoundError" in proc.stderr or "one file, one module name" in proc.stderr, proc.stderr


def test_every_package_folder_is_listed_in_its_pyproject():
    import tomllib

    for folder, name in DISTRIBUTIONS:
        conf = tomllib.loads((folder / "pyproject.toml").read_text())["tool"]["setuptools"]
        assert conf["package-dir"] == {"": "."}, folder  # a plain path entry when installed editable
        listed = set(conf["packages"])
        for init in (folder / name).rglob("__init__.py"):
            pkg = ".".join(init.parent.relative_to(folder).parts)
            assert pkg in listed, f"{init.parent} is a package but {pkg} is not in {folder}/pyproject.toml"


@pytest.mark.slow
def test_built_wheels_install_and_import(tmp_path):
    wheels = tmp_path / "wheels"
    for folder, _ in DISTRIBUTIONS:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                str(folder),
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(wheels),
            ],
            check=True,
            capture_output=True,
        )
    built = sorted(w.name.split("-")[0] for w in wheels.glob("*.whl"))
    assert built == ["sdls", "sdls_kernels", "sdls_model"], built
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            *map(str, wheels.glob("*.whl")),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import sdls, sdls_model, sdls_kernels, sdls.cli; from sdls_model.checkpoint import default_model_dir; "
        "print(sdls.__file__); print(sdls_model.__file__); print(sdls_kernels.__file__); "
        "print(default_model_dir() / 'config.json')"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env, cwd=tmp_path
    )
    files = out.stdout.split()
    assert all(f.startswith(str(target)) for f in files), files
    assert Path(files[-1]).is_file()  # the shipped model travels inside the sdls-model wheel
    assert not (target / "tests").exists() and not (target / "model").exists()


def parsed(folder: str) -> dict[str, ast.Module]:
    """The syntax trees of the sources under a folder (build outputs skipped)."""
    paths = [p for p in (ROOT / folder).rglob("*.py") if "build" not in p.relative_to(ROOT).parts]
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(encoding="utf-8")) for p in paths}


def test_attention_masks_are_built_only_by_the_shared_layout():
    """Training and decoding share one attention rule: no module but layout.py defines an attention
    mask builder, and the engine and the trainer both build theirs with layout.attention_mask."""
    trees = parsed("model")
    builders = [
        path
        for path, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and "attention" in node.name and "mask" in node.name
    ]
    assert builders == ["model/sdls_model/layout.py"]
    callers = {
        path
        for path, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "attention_mask"
    }
    assert {"model/sdls_model/engine/batch.py", "model/sdls_model/train/objectives.py"} <= callers


FILE_WRITERS = {"write_text", "write_bytes", "unlink", "rename", "rmdir", "touch"}  # pathlib
OS_WRITERS = {"os": {"remove", "unlink", "rename", "replace", "rmdir", "removedirs"}, "shutil": None}  # None: all


def writes_files(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
    if name == "open":  # open(path, mode) or Path.open(mode): a mode string that writes
        modes = [*call.args[:2], *(k.value for k in call.keywords if k.arg == "mode")]
        return any(isinstance(m, ast.Constant) and re.fullmatch(r"[rbt]*[wax+][rwaxbt+]*", str(m.value)) for m in modes)
    if owner in OS_WRITERS:
        return OS_WRITERS[owner] is None or name in OS_WRITERS[owner]
    return isinstance(func, ast.Attribute) and name in FILE_WRITERS


def test_the_language_server_never_writes_a_file():
    """The server proposes, the editor disposes: nothing in sdls/lsp or sdls/syntax writes, moves or
    deletes a file; edits reach the user's files only as WorkspaceEdits the editor applies."""
    found = [
        f"{path}:{node.lineno}"
        for folder in ("sdls/lsp", "sdls/syntax")
        for path, tree in parsed(folder).items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and writes_files(node)
    ]
    assert found == []


def test_the_worker_and_the_syntax_layer_never_import_the_language_server():
    """sdls.lsp imports the worker's client; the other way round would make a cycle of layers."""
    found = [
        f"{path}:{node.lineno}"
        for folder in ("sdls/worker", "sdls/syntax")
        for path, tree in parsed(folder).items()
        for node in ast.walk(tree)
        if (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("sdls.lsp" if node.level == 0 else "lsp")
        )
        or (isinstance(node, ast.Import) and any(a.name.startswith("sdls.lsp") for a in node.names))
    ]
    assert found == []
