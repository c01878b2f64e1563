"""Multi-site edits for `sdls bench nextedit`, built from real Python files by applying a real
refactoring with tree-sitter; the first site is the user's edit, the rest are what a next-edit
suggestion should do.

Kinds:
- rename-param: a parameter of a function and its uses in the function (`p` -> `p_value`);
- rename-local: a local variable's first binding and its uses in the function;
- rename-function: a module-level function and its calls in the file (`f` -> `f_impl`);
- add-argument: every one-line call of a function defined in the file gets `, check=True`;
- remove-param: the last parameter of a function, unused in its body, goes, and so does the last
  argument of every call that passes it (a signature change).
Scopes are sdls's own (syntax/occurrences.py): a name rebound by a nested function counts as the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdls.syntax import SyntaxDocument
from sdls.syntax.names import _py_level_bindings, _py_parameter_names
from sdls.syntax.occurrences import calls_named, name_occurrences
from sdls_model.jobs import TextEdit

from .edits import apply_edits

KINDS = ("rename-param", "rename-local", "rename-function", "add-argument", "remove-param")
_SKIP_PARAMS = {"self", "cls", "_"}


@dataclass(frozen=True)
class Case:
    kind: str
    path: str
    line: int  # 1-based line of the user's edit
    text: str  # the file before the refactoring
    sites: tuple[TextEdit, ...]  # in document order of the refactoring; sites[0] is the user's edit

    @property
    def target(self) -> str:
        return apply_edits(self.text, list(self.sites))


def _functions(doc: SyntaxDocument):
    stack = [doc.tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "function_definition":
            yield node
        stack.extend(reversed(node.children))


def _one_line(doc: SyntaxDocument, start: int, end: int) -> bool:
    return "\n" not in doc.text[start:end]


def _renames(doc: SyntaxDocument, fn, names: list[str], first_of) -> list[tuple[str, list[TextEdit]]]:
    lo, hi = doc.node_range(fn)
    out = []
    for name in names:
        occ = name_occurrences(doc, name, "name", lo, hi)
        keyword = name_occurrences(doc, name, "keyword", lo, hi)
        first = first_of(name, occ)
        if first is None or len(occ) < 2 or keyword:
            continue
        new = f"{name}_value"
        if name_occurrences(doc, new, "name"):
            continue
        edits = [TextEdit(i.start, i.end, new) for i in occ]
        edits.sort(key=lambda e: (e.start != first.start, e.start))
        out.append((name, edits))
    return out


def _param_cases(doc: SyntaxDocument, fn) -> list[list[TextEdit]]:
    params = fn.child_by_field_name("parameters")
    plain = [p for p in params.named_children if p.type == "identifier"]
    names = [p.text.decode() for p in plain if p.text.decode() not in _SKIP_PARAMS]
    p_start, p_end = doc.node_range(params)
    found = _renames(doc, fn, names, lambda n, occ: next((i for i in occ if p_start <= i.start < p_end), None))
    return [edits for _, edits in found]


def _local_cases(doc: SyntaxDocument, fn) -> list[list[TextEdit]]:
    body = fn.child_by_field_name("body")
    params = _py_parameter_names(fn.child_by_field_name("parameters"))
    locals_ = sorted(_py_level_bindings(body) - params - _SKIP_PARAMS)
    b_start = doc.node_range(body)[0]

    def first_binding(name, occ):
        inside = [i for i in occ if i.start >= b_start]
        return inside[0] if inside else None

    return [edits for _, edits in _renames(doc, fn, locals_, first_binding)]


def _top_level_functions(doc: SyntaxDocument):
    for node in doc.tree.root_node.children:
        inner = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
        if inner is not None and inner.type == "function_definition":
            yield inner


def _function_renames(doc: SyntaxDocument) -> list[list[TextEdit]]:
    out = []
    for fn in _top_level_functions(doc):
        name_node = fn.child_by_field_name("name")
        name = name_node.text.decode()
        occ = name_occurrences(doc, name, "name")
        new = f"{name}_impl"
        if len(occ) < 2 or name_occurrences(doc, new, "name") or name.startswith("__"):
            continue
        start = doc.node_range(name_node)[0]
        edits = [TextEdit(i.start, i.end, new) for i in occ]
        edits.sort(key=lambda e: (e.start != start, e.start))
        out.append(edits)
    return out


def _argument_additions(doc: SyntaxDocument) -> list[list[TextEdit]]:
    out = []
    for fn in _top_level_functions(doc):
        name = fn.child_by_field_name("name").text.decode()
        calls = [
            c
            for c in calls_named(doc, name)
            if _one_line(doc, c.start, c.end) and "check=" not in doc.text[c.start : c.end]
        ]
        if len(calls) < 2:
            continue
        out.append(
            [
                TextEdit(c.args[-1][1], c.args[-1][1], ", check=True")
                if c.args
                else TextEdit(c.args_start, c.args_start, "check=True")
                for c in calls
            ]
        )
    return out


def _parameter_removals(doc: SyntaxDocument) -> list[list[TextEdit]]:
    out = []
    for fn in _top_level_functions(doc):
        params = fn.child_by_field_name("parameters")
        kids = [c for c in params.named_children if c.type != "comment"]
        if len(kids) < 2 or any(k.type != "identifier" for k in kids):
            continue
        last = kids[-1].text.decode()
        body = fn.child_by_field_name("body")
        b_start, b_end = doc.node_range(body)
        if name_occurrences(doc, last, "name", b_start, b_end):
            continue  # used: removing it would break the body
        name = fn.child_by_field_name("name").text.decode()
        calls = [c for c in calls_named(doc, name) if _one_line(doc, c.start, c.end)]
        calls = [
            c
            for c in calls
            if len(c.args) == len(kids)
            and all("=" not in doc.text[s:e] and "*" not in doc.text[s:e] for s, e in c.args)
        ]
        if not calls:
            continue
        prev_end = doc.node_range(kids[-2])[1]
        sites = [TextEdit(prev_end, doc.node_range(kids[-1])[1], "")]
        sites += [TextEdit(c.args[-2][1], c.args[-1][1], "") for c in calls]
        out.append(sites)
    return out


def cases_from(path: str, text: str, per_kind: int) -> list[Case]:
    """Up to `per_kind` cases of each kind from one file (spread over the file)."""
    doc = SyntaxDocument(text, "python")
    if doc.tree is None or doc.tree.root_node.has_error:
        return []
    found: dict[str, list[list[TextEdit]]] = {k: [] for k in KINDS}
    for fn in _functions(doc):
        found["rename-param"] += _param_cases(doc, fn)
        found["rename-local"] += _local_cases(doc, fn)
    found["rename-function"] = _function_renames(doc)
    found["add-argument"] = _argument_additions(doc)
    found["remove-param"] = _parameter_removals(doc)
    cases = []
    for kind, all_sites in found.items():
        step = max(1, len(all_sites) // max(1, per_kind))
        for sites in all_sites[::step][:per_kind]:
            line = text.count("\n", 0, sites[0].start) + 1
            cases.append(Case(kind, path, line, text, tuple(sites)))
    return cases
