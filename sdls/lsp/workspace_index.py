"""Cross-file context: the declarations of workspace files that a document imports.

Declarations are signatures only (a function's header, a class with its method headers), extracted
with tree-sitter and cached per file. A watchdog observer over the workspace (ignoring .git,
virtualenvs, node_modules and caches) drops a changed file's entry after a debounce, so the index
stays current without re-parsing on every save burst. Files are parsed only when some open
document imports them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path

from sdls.syntax import SyntaxDocument, language_for
from sdls.watching import Debouncer, changed_paths

log = logging.getLogger(__name__)

IGNORED_DIRS = {
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    ".venv",
    "venv",
    "env",
    ".env",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "site-packages",
    "dist",
    "build",
    "target",
}
MAX_FILE_BYTES = 512 * 1024
_PY_FROM = re.compile(r"^\s*from\s+(\.*)([\w.]*)\s+import\s+([^#\n]+)", re.M)
_PY_IMPORT = re.compile(r"^\s*import\s+([\w.]+(?:\s*,\s*[\w.]+)*)", re.M)
_JS_IMPORT = re.compile(r"""(?:from\s+|require\(\s*|import\(\s*)['"](\.{1,2}/[^'"]+)['"]""")
_LUA_REQUIRE = re.compile(r"""require\s*\(?\s*['"]([\w.]+)['"]""")
_JS_EXTENSIONS = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", "/index.ts", "/index.js")
_BODY_FIELDS = ("body", "block")
_DECLARATIONS = {
    "python": {"function_definition", "class_definition", "decorated_definition"},
    "javascript": {"function_declaration", "class_declaration", "export_statement", "generator_function_declaration"},
    "typescript": {
        "function_declaration",
        "class_declaration",
        "export_statement",
        "interface_declaration",
        "type_alias_declaration",
    },
    "go": {"function_declaration", "method_declaration", "type_declaration"},
    "rust": {"function_item", "struct_item", "enum_item", "trait_item", "impl_item"},
    "lua": {"function_declaration"},
}
_DECLARATIONS["tsx"] = _DECLARATIONS["typescript"]


def is_ignored(path: Path, root: Path) -> bool:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return True
    return any(part in IGNORED_DIRS for part in parts[:-1])


# -- pure parts: what a file declares, what a file imports ---------------------------------------
def _head(doc: SyntaxDocument, node) -> str | None:
    """A definition's text up to its body; None if it has no body (then the whole text is the head)."""
    body = next((node.child_by_field_name(f) for f in _BODY_FIELDS if node.child_by_field_name(f) is not None), None)
    if body is None:
        return None
    return doc.text[doc.node_range(node)[0] : doc.node_range(body)[0]].rstrip()


def _stub(head: str, language: str) -> str:
    return head + {"python": " ...", "lua": " ... end"}.get(language, " { ... }")


_CLASSES = {"class_definition", "class_declaration", "impl_item", "trait_item"}
_METHODS = {"function_definition", "method_definition", "function_item"}
_FUNCTION_LIKE = _METHODS | {"function_declaration", "method_declaration", "generator_function_declaration"}


def declarations(text: str, language: str) -> list[str]:
    """Top-level signatures of a file (classes with their method headers and short field lines)."""
    doc = SyntaxDocument(text, language)
    if doc.tree is None:
        return []
    kinds = _DECLARATIONS.get(language, set())
    out: list[str] = []
    for node in doc.tree.root_node.children:
        if language == "python" and (
            node.type == "assignment"
            or (
                node.type == "expression_statement"
                and node.named_children
                and node.named_children[0].type == "assignment"
            )
        ):
            line = doc.text[slice(*doc.node_range(node))]
            if "\n" not in line and len(line) <= 120:
                out.append(line)  # module constants: `TIMEOUT = 30`, `__all__ = [...]`
            continue
        if node.type not in kinds:
            continue
        start = doc.node_range(node)[0]  # decorators and `export` stay in the signature
        inner = node
        if node.type in ("decorated_definition", "export_statement"):
            inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration") or node
        head = _head(doc, inner)
        if head is None:
            whole = doc.text[start : doc.node_range(node)[1]]
            if len(whole) <= 200:
                out.append(whole)
            continue
        head = doc.text[start : doc.node_range(inner)[0]] + head
        whole = doc.text[start : doc.node_range(node)[1]]
        if inner.type not in _CLASSES and inner.type not in _FUNCTION_LIKE and len(whole) <= 400:
            out.append(whole)  # structs, interfaces, types: their fields are the declaration
            continue
        if inner.type not in _CLASSES:
            out.append(_stub(head, language))
            continue
        members = []
        for child in inner.child_by_field_name("body").named_children:
            target = child.child_by_field_name("definition") if child.type == "decorated_definition" else child
            if target is not None and target.type in _METHODS:
                member_head = _head(doc, target)
                if member_head is not None:
                    members.append("    " + _stub(member_head, language))
            elif (
                child.type in ("expression_statement", "assignment", "field_definition", "public_field_definition")
                and "\n" not in doc.text[slice(*doc.node_range(child))]
            ):
                members.append("    " + doc.text[slice(*doc.node_range(child))])
        if language == "python":
            out.append("\n".join([head, *(members or ["    ..."])]))
        else:
            out.append("\n".join([head + " {", *members, "}"]))
    return out


def declared_names(doc: SyntaxDocument) -> set[str]:
    """The names a parsed file declares at its top level (what its importers can use): the functions,
    classes and types `declarations` lists, and Python's module constants."""
    if doc.tree is None or doc.language is None:
        return set()
    kinds = _DECLARATIONS.get(doc.language, set())
    out: set[str] = set()
    for node in doc.tree.root_node.children:
        if doc.language == "python" and node.type in ("assignment", "expression_statement"):
            assignment = node if node.type == "assignment" else next(iter(node.named_children), None)
            left = assignment.child_by_field_name("left") if assignment is not None else None
            if (
                assignment is not None
                and assignment.type == "assignment"
                and left is not None
                and left.type == "identifier"
            ):
                out.add(doc.text[slice(*doc.node_range(left))])
            continue
        if node.type not in kinds:
            continue
        inner = node
        if node.type in ("decorated_definition", "export_statement"):
            inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration") or node
        name = inner.child_by_field_name("name")
        if name is not None:
            out.add(doc.text[slice(*doc.node_range(name))])
    return out


def inside_roots(path: Path, roots: list[Path]) -> Path | None:
    """`path` with its symlinks resolved, if that lies under one of `roots` (resolved ones); else None.
    What the index may read: a relative import (`from ...x`, `'../../x.js'`) or a symlink that leads
    out of the workspace leads nowhere; the interpreter's libraries are never read."""
    real = path.resolve()
    return real if any(real.is_relative_to(root) for root in roots) else None


def imported_paths(text: str, language: str | None, path: Path, roots: list[Path]) -> list[Path]:
    """Workspace files `text` (the file at `path`) imports, in import order: existing files under
    `roots` only (symlinks resolved; nothing outside them is even looked at)."""
    found: list[Path] = []
    roots = [root.resolve() for root in roots]

    def add(candidate: Path) -> None:
        real = inside_roots(candidate, roots)
        if real is not None and real not in found and real != path and real.is_file():
            found.append(real)

    if language == "python":
        for dots, module, names in _PY_FROM.findall(text):
            bases = [path.parent] if dots else roots
            for base in bases:
                for _ in range(max(0, len(dots) - 1)):
                    base = base.parent
                mod_dir = base.joinpath(*module.split(".")) if module else base
                add(mod_dir.with_suffix(".py")) if module else None
                add(mod_dir / "__init__.py")
                for name in re.findall(r"\w+", names.split(" as ")[0] if "(" not in names else names):
                    add(mod_dir / f"{name}.py")
        for group in _PY_IMPORT.findall(text):
            for module in (m.strip() for m in group.split(",")):
                for base in roots:
                    mod_path = base.joinpath(*module.split("."))
                    add(mod_path.with_suffix(".py"))
                    add(mod_path / "__init__.py")
    elif language in ("javascript", "typescript", "tsx"):
        for spec in _JS_IMPORT.findall(text):
            for ext in _JS_EXTENSIONS:
                candidate = inside_roots(path.parent / (spec + ext), roots)
                if candidate is not None and candidate.is_file():
                    add(candidate)
                    break
    elif language == "lua":
        for module in _LUA_REQUIRE.findall(text):
            for base in roots:
                add(base.joinpath(*module.split(".")).with_suffix(".lua"))
    return found


# -- the index: cached declarations, invalidated by a debounced watcher ----------------------------
class DeclarationIndex:
    def __init__(
        self, roots: list[Path], open_text: Callable[[Path], str | None] | None = None, debounce_s: float = 0.3
    ):
        self.roots = [Path(r).resolve() for r in roots]
        self.open_text = open_text or (lambda _path: None)  # unsaved editor buffers win over disk
        self._cache: dict[Path, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()
        self._dirty: set[Path] = set()
        self._debouncer = Debouncer(debounce_s, self._flush)
        self._observer = None
        self._watch = False  # watching was asked for (the observer may still be starting)
        self.invalidations = 0

    def declarations_of(self, path: Path) -> list[str]:
        """The declarations of a workspace file; nothing (and no read) for a file outside the roots."""
        resolved = inside_roots(path, self.roots)
        language = language_for(str(resolved)) if resolved is not None else None
        if resolved is None or language is None:
            return []
        path = resolved
        text = self.open_text(path)
        if text is not None:
            return declarations(text, language)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and self._observer is not None:
            return cached[1]  # the watcher drops entries that change: no stat per keystroke
        try:
            stat = path.stat()
            if cached is not None and cached[0] == stat.st_mtime:
                return cached[1]
            if stat.st_size > MAX_FILE_BYTES:
                return []
            found = declarations(path.read_text(encoding="utf-8"), language)
        except (OSError, UnicodeDecodeError):
            return []
        with self._lock:
            self._cache[path] = (stat.st_mtime, found)
        return found

    def context_for(self, text: str, path: Path | None, language: str | None) -> list[tuple[str, list[str]]]:
        """(relative name, declarations) of every workspace file the document imports."""
        if path is None or not self.roots:
            return []
        out = []
        for imported in imported_paths(text, language, path.resolve(), self.roots):
            if any(imported.is_relative_to(root) and is_ignored(imported, root) for root in self.roots):
                continue
            decls = self.declarations_of(imported)
            if decls:
                root = next((r for r in self.roots if imported.is_relative_to(r)), imported.parent)
                out.append((str(imported.relative_to(root)), decls))
        return out

    # -- watching ---------------------------------------------------------------------------------
    def start_watching(self, background: bool = False) -> None:
        """Watch the roots; in the background, a big workspace does not hold up `initialize`.
        If the system refuses (inotify watch limit), the index falls back to checking mtimes."""
        self._watch = True
        if background:
            threading.Thread(target=self._start_observer_or_fall_back, name="sdls-index-watch", daemon=True).start()
        else:
            self._start_observer_or_fall_back()

    def _start_observer_or_fall_back(self) -> None:
        try:
            self._start_observer()
        except OSError as exc:
            log.warning("not watching the workspace (%s); declarations are re-checked by mtime", exc)

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        index = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                if not event.is_directory:
                    for path in changed_paths(event):
                        index._changed(Path(path))

        roots = list(self.roots)
        observer = Observer()
        for root in roots:
            if root.is_dir():
                observer.schedule(Handler(), str(root), recursive=True)
        observer.daemon = True
        observer.start()
        with self._lock:  # only now: until the watch is up, cached entries are re-checked
            current = self._watch and roots == self.roots and self._observer is None
            if current:
                self._observer = observer
        if not current:  # stopped or re-rooted while this one started: it watches the wrong thing
            observer.stop()

    def _changed(self, path: Path) -> None:
        if any(is_ignored(path, root) for root in self.roots):
            return
        with self._lock:
            self._dirty.add(path.resolve())
        self._debouncer.poke()

    def _flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            for path in dirty:
                if self._cache.pop(path, None) is not None:
                    self.invalidations += 1

    def set_roots(self, roots: list[Path]) -> None:
        """New workspace folders: forget files outside them and watch the new set."""
        roots = [Path(r).resolve() for r in roots]
        if roots == self.roots:
            return
        with self._lock:
            self.roots = roots
            self._cache = {p: v for p, v in self._cache.items() if any(p.is_relative_to(r) for r in roots)}
            old, self._observer = self._observer, None
        if old is not None:
            old.stop()
        if self._watch:
            self.start_watching(background=True)

    def stop(self) -> None:
        with self._lock:
            self._watch = False
            old, self._observer = self._observer, None
        self._debouncer.cancel()
        if old is not None:
            old.stop()
