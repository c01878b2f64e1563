"""Next-edit sites in other open files: after the user renames a name their module declares at its top
level (a function, a class, a constant), the files that import that module still use the old name.

The workspace index says which files a file imports (`imported_paths`) and what a file declares
(`declared_names`); here that is read the other way round: an open document that imports the renamed
file and uses the old name there (`from geometry import area`, `area(...)`, `geometry.area`) gets
the same rename, one line at a time. Only open documents: an edit is bound to a document version,
and only open documents have one (closed files are the editor's own rename's job). A document that
declares the old name itself is left alone (its `area` is its own).

Plain data, no LSP types.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdls.syntax import SyntaxDocument
from sdls.syntax.occurrences import Identifier, identifier_at, name_occurrences
from sdls_model.jobs import TextEdit

from .edit_history import EditEvent
from .next_edit_rules import Candidate
from .workspace_index import declared_names, imported_paths

RULE = "workspace-rename"


@dataclass(frozen=True)
class ExportedRename:
    uri: str  # the document the user renamed it in
    path: Path  # its file
    old: str
    new: str


def exported_rename(doc: SyntaxDocument, event: EditEvent | None) -> tuple[str, str] | None:
    """(old, new) when `event` renamed a name the module declares at its top level, else None."""
    if event is None or doc.tree is None or not event.holds(doc.text):
        return None
    old_doc = doc.with_edit(event.start, event.end, event.old)
    new = identifier_at(doc, event.start, event.end)
    old = identifier_at(old_doc, event.start, event.start + len(event.old))
    if new is None or old is None or new.name == old.name or new.start != old.start or new.kind != "name":
        return None
    before, after = declared_names(old_doc), declared_names(doc)
    if old.name in before and new.name in after and old.name not in after:
        return old.name, new.name
    return None


def _module_aliases(doc: SyntaxDocument, path: Path, target: Path, roots: list[Path]) -> set[str]:
    """The names `doc` binds to the module at `target` with `import ...` (`geometry`, `pkg.geometry`, an alias)."""
    out: set[str] = set()
    for node in doc.tree.root_node.children if doc.tree is not None else ():
        if node.type != "import_statement":
            continue
        for name in node.children_by_field_name("name"):
            dotted = name.child_by_field_name("name") if name.type == "aliased_import" else name
            if dotted is None:
                continue
            module = doc.text[slice(*doc.node_range(dotted))]
            if target in imported_paths(f"import {module}\n", doc.language, path, roots):
                alias = name.child_by_field_name("alias") if name.type == "aliased_import" else None
                out.add(doc.text[slice(*doc.node_range(alias))] if alias is not None else module)
    return out


def _imports_name(doc: SyntaxDocument, path: Path, target: Path, roots: list[Path], name: str) -> bool:
    """Does `doc` import `name` from the module at `target` (`from geometry import area [as a]`)?"""
    for node in doc.tree.root_node.children if doc.tree is not None else ():
        module = node.child_by_field_name("module_name") if node.type == "import_from_statement" else None
        if module is None:
            continue
        names = [
            n.child_by_field_name("name") if n.type == "aliased_import" else n
            for n in node.children_by_field_name("name")
        ]
        if any(n is not None and doc.text[slice(*doc.node_range(n))] == name for n in names):
            stmt = f"from {doc.text[slice(*doc.node_range(module))]} import {name}\n"
            if target in imported_paths(stmt, doc.language, path, roots):
                return True
    return False


def _attribute_object(doc: SyntaxDocument, ident: Identifier) -> str | None:
    """The text of `x` in `x.name`, for an attribute identifier."""
    node = doc.tree.root_node.descendant_for_byte_range(doc.byte_of(ident.start), doc.byte_of(ident.end))
    parent = node.parent if node is not None else None
    obj = parent.child_by_field_name("object") if parent is not None and parent.type == "attribute" else None
    return doc.text[slice(*doc.node_range(obj))] if obj is not None else None


def importer_sites(doc: SyntaxDocument, path: Path, rename: ExportedRename, roots: list[Path]) -> list[Candidate]:
    """The lines of `doc` (the file at `path`) that use the renamed name through an import of its file,
    each with the rename written in, in document order."""
    if (
        doc.tree is None
        or path == rename.path
        or rename.path not in imported_paths(doc.text, doc.language, path, roots)
    ):
        return []
    if rename.old in declared_names(doc):
        return []
    # `from geometry import area`, or `... import surface` once that line was renamed: the bare uses follow it
    imported = any(_imports_name(doc, path, rename.path, roots, n) for n in (rename.old, rename.new))
    sites = name_occurrences(doc, rename.old, "name") if imported else []
    aliases = _module_aliases(doc, path, rename.path, roots)
    if aliases:
        sites += [i for i in name_occurrences(doc, rename.old, "attribute") if _attribute_object(doc, i) in aliases]
    by_line: dict[int, list[Identifier]] = {}
    for i in sorted(sites, key=lambda i: i.start):
        by_line.setdefault(doc.text.count("\n", 0, i.start), []).append(i)
    cands = []
    for group in by_line.values():
        first, last = group[0], group[-1]
        piece = doc.text[first.start : last.end]
        for i in reversed(group):
            piece = piece[: i.start - first.start] + rename.new + piece[i.end - first.start :]
        cands.append(Candidate(first.start, last.end, RULE, TextEdit(first.start, last.end, piece)))
    return cands
