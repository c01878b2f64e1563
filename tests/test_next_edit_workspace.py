"""Next edits in other open files: a renamed top-level name is renamed next where the files that import
its module use it (next_edit_workspace.py), through NextEdits as the server wires it: bound to both
documents' versions, chained across the importer's uses, dropped when either document moves on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sdls.lsp.documents import DocumentStore
from sdls.lsp.edit_history import EditHistory, changed_span
from sdls.lsp.next_edit_state import NextEdits
from sdls.lsp.next_edit_workspace import ExportedRename, exported_rename, importer_sites
from sdls.lsp.settings import NextEditSettings
from sdls.syntax import SyntaxDocument

GEOMETRY = "def area(w, h):\n    return w * h\n\n\nUNIT = 'm'\n"
MAIN = (
    "from geometry import area\n"
    "import geometry\n"
    "import geometry as g\n"
    "\n"
    "\n"
    "def report():\n"
    "    print(area(1, 2))\n"
    "    return area(3, 4) + geometry.area(5, 6) + g.area(7, 8) + shapes.area(9)\n"
)


def renamed(text: str, old: str, new: str, at: int | None = None) -> tuple[SyntaxDocument, EditHistory]:
    """`text` with `old` (its first occurrence, or the one at `at`) retyped as `new`, and the history of it."""
    at = text.index(old) if at is None else at
    history = EditHistory()
    before, after = text, text[:at] + new + text[at + len(old) :]
    history.observe(2, changed_span(before, after, at), before)
    return SyntaxDocument(after, "python"), history


def test_only_a_rename_of_a_top_level_declaration_is_exported():
    doc, h = renamed(GEOMETRY, "area", "surface")
    assert exported_rename(doc, h.user_event(doc.text)) == ("area", "surface")
    doc, h = renamed(GEOMETRY, "UNIT", "UNITS")
    assert exported_rename(doc, h.user_event(doc.text)) == ("UNIT", "UNITS")
    doc, h = renamed(GEOMETRY, "w", "width")  # a parameter: no importer sees it
    assert exported_rename(doc, h.user_event(doc.text)) is None
    doc, h = renamed(MAIN, "area", "surface", at=MAIN.index("area(1"))  # a use, not the declaration
    assert exported_rename(doc, h.user_event(doc.text)) is None


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "geometry.py").write_text(GEOMETRY)
    (tmp_path / "main.py").write_text(MAIN)
    return tmp_path.resolve()


def sites(root: Path, text: str, name: str = "main.py") -> list[tuple[str, str]]:
    doc = SyntaxDocument(text, "python")
    rename = ExportedRename("file:///g", root / "geometry.py", "area", "surface")
    return [(text[c.start : c.end], c.proposal.new_text) for c in importer_sites(doc, root / name, rename, [root])]


def test_an_importer_gets_the_rename_at_its_import_and_each_line_of_uses(workspace):
    assert sites(workspace, MAIN) == [
        ("area", "surface"),
        ("area", "surface"),
        ("area(3, 4) + geometry.area(5, 6) + g.area", "surface(3, 4) + geometry.surface(5, 6) + g.surface"),
    ]  # `shapes.area` is another module's: left alone


def test_files_that_do_not_import_it_or_declare_the_name_themselves_get_nothing(workspace):
    assert sites(workspace, "from shapes import area\nprint(area(1))\n") == []
    assert sites(workspace, "import geometry\n\n\ndef area():\n    return geometry.UNIT\n") == []
    assert sites(workspace, GEOMETRY, name="geometry.py") == []  # the renamed file itself
    # an alias: only the import names `area`; its uses are spelled `a`
    assert sites(workspace, "from geometry import area as a\nprint(a(1, 2))\n") == [("area", "surface")]


class Workspace:
    """A document store over real files and a NextEdits wired as the server wires it."""

    def __init__(self, root: Path, **settings):
        self.root, self.store = root, DocumentStore()
        self.settings = NextEditSettings(**{"debounce_ms": 0, "model": False, **settings})
        self.ne = NextEdits(lambda: self.settings)
        self.ne.documents, self.ne.roots = self.store.all, lambda: [root]

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()

    def open(self, name: str) -> None:
        self.store.open(self.uri(name), "python", 1, (self.root / name).read_text())

    def doc(self, name: str):
        return self.store.get(self.uri(name))

    def change(self, name: str, start: int, end: int, new: str) -> None:
        doc = self.doc(name)
        (sl, sc), (el, ec) = doc.position(start), doc.position(end)
        before = doc.text
        self.ne.observe(self.store.change(doc.uri, doc.version + 1, [((sl, sc, el, ec), new)]), before, start)

    def retype(self, name: str, old: str, new: str) -> None:
        at = self.doc(name).text.index(old)
        self.change(name, at, at + len(old), "")
        for k, ch in enumerate(new):
            self.change(name, at + k, at + k, ch)

    def ask(self, name: str):
        doc = self.doc(name)
        return asyncio.run(self.ne.request(doc, doc.version))

    def apply(self, s) -> None:
        name = Path(s.uri).name
        self.change(name, s.edit.start, s.edit.end, s.edit.text)
        assert self.ne.accepted(s.id)


def test_after_the_file_is_done_the_importers_uses_follow_one_by_one(workspace):
    ws = Workspace(workspace)
    ws.open("geometry.py")
    ws.open("main.py")
    ws.retype("geometry.py", "area", "surface")
    first, why = ws.ask("geometry.py")
    assert first.uri == ws.uri("main.py") and first.version == ws.doc("main.py").version
    assert (first.origin, first.origin_version) == (ws.uri("geometry.py"), ws.doc("geometry.py").version)
    assert (first.edit.rule, first.edit.source, first.edit.text) == ("workspace-rename", "rule", "surface")
    assert ws.doc("main.py").text[first.edit.start : first.edit.end] == "area" and why == "rule workspace-rename"
    ws.apply(first)  # the editor opened main.py and applied it there...
    assert ws.ne.histories[ws.uri("main.py")].events[-1].accepted  # ...recorded as accepted, not typed
    seen = 1
    while (s := ws.ask("main.py")[0]) is not None:  # ...and asks from there: the rest of its uses
        assert s.uri == ws.uri("main.py") and s.edit.rule == "workspace-rename"
        ws.apply(s)
        seen += 1
    assert seen == 3
    assert ws.doc("main.py").text == MAIN.replace("area", "surface").replace("shapes.surface", "shapes.area")
    assert ws.doc("geometry.py").text == GEOMETRY.replace("area", "surface")  # never touched by a suggestion


def test_a_cross_file_suggestion_drops_when_either_document_moves_on(workspace):
    ws = Workspace(workspace)
    ws.open("geometry.py")
    ws.open("main.py")
    ws.retype("geometry.py", "area", "surface")
    s, _ = ws.ask("geometry.py")
    assert ws.ne.current[ws.uri("geometry.py")] is s
    end = len(ws.doc("main.py").text)
    ws.change("main.py", end, end, "print(1)\n")  # the user edits the importer itself
    assert ws.uri("geometry.py") not in ws.ne.current
    assert ws.ne.exported is None  # an edit of the user's elsewhere: the rename is no longer the context
    assert ws.ask("main.py")[0] is None
    again, _ = ws.ask("geometry.py")  # asked from the renamed file again: its last edit is still the rename
    assert again.uri == ws.uri("main.py") and again.version == ws.doc("main.py").version


def test_a_dismissed_cross_file_edit_is_not_offered_again_and_closing_the_source_ends_it(workspace):
    ws = Workspace(workspace)
    ws.open("geometry.py")
    ws.open("main.py")
    ws.retype("geometry.py", "area", "surface")
    s, _ = ws.ask("geometry.py")
    assert ws.ne.rejected_by_user(s.id)
    nxt, _ = ws.ask("geometry.py")
    assert nxt is not None and nxt.uri == s.uri and nxt.edit.start > s.edit.start
    ws.ne.close(ws.uri("geometry.py"))
    ws.store.close(ws.uri("geometry.py"))
    assert ws.ne.exported is None and ws.ask("main.py")[0] is None


def test_binary_and_huge_importers_are_never_searched(workspace):
    (workspace / "notes.py").write_text("\x00binary from geometry import area\n")
    (workspace / "big.py").write_text(MAIN + "x = 1\n" * 500)
    ws = Workspace(workspace)
    ws.store.max_chars = 2000  # big.py is over maxDocumentChars: plain text
    ws.open("geometry.py")
    ws.open("notes.py")
    ws.open("big.py")
    ws.retype("geometry.py", "area", "surface")
    s, why = ws.ask("geometry.py")
    assert s is None and why
    ws.open("main.py")  # an ordinary importer is
    assert ws.ask("geometry.py")[0].uri == ws.uri("main.py")


def test_once_the_renamed_declaration_has_gone_its_importers_get_nothing(workspace):
    ws = Workspace(workspace)
    ws.open("geometry.py")
    ws.open("main.py")
    ws.retype("geometry.py", "area", "surface")
    first, _ = ws.ask("geometry.py")
    ws.apply(first)
    text = ws.doc("geometry.py").text  # the def is cut out by a change the history never matched
    ws.store.change(ws.uri("geometry.py"), 99, [(None, text.replace("def surface", "def volume"))])
    assert ws.ask("main.py")[0] is None and ws.ne.exported is None
    assert "area" in ws.doc("main.py").text  # the uses left stay as the user has them
