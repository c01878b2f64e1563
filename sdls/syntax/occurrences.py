"""Where a name occurs and where calls are: the sites a rename or a changed call propagates to.

`identifier_at` finds the identifier an edit touched, `rename_scope` the region a renamed local,
parameter or function lives in (the function that binds it, else the document), `name_occurrences`
its other uses there, and `calls_named` / `call_around` the calls of a function with their
argument spans. Python gets scopes; other languages the whole document.
"""

from __future__ import annotations

from dataclasses import dataclass

import tree_sitter

from .document import SyntaxDocument
from .names import _py_level_bindings, _py_parameter_names

IDENTIFIERS = {"identifier", "type_identifier", "field_identifier", "property_identifier"}
_FUNCTIONS = {
    "function_definition",
    "lambda",
    "function_declaration",
    "method_definition",
    "arrow_function",
    "function_expression",
    "function_item",
    "method_declaration",
}
_CALLS = {"call", "call_expression", "function_call", "method_invocation"}
_ARGUMENTS = {"argument_list", "arguments"}


@dataclass(frozen=True)
class Identifier:
    start: int
    end: int
    name: str
    kind: str  # "name" | "attribute" (the `b` of `a.b`) | "keyword" (the `k` of `f(k=1)`)


@dataclass(frozen=True)
class Call:
    start: int  # the whole call
    end: int
    callee: str  # the called name (`f` of `f(x)`, `g` of `a.g(x)`)
    args_start: int  # just inside the parentheses
    args_end: int
    args: tuple[tuple[int, int], ...]  # each argument's span


def _kind(node: tree_sitter.Node) -> str:
    parent = node.parent
    if node.type in ("property_identifier", "field_identifier"):
        return "attribute"
    if parent is None:
        return "name"
    if parent.type == "attribute" and parent.child_by_field_name("attribute") == node:
        return "attribute"
    if parent.type == "keyword_argument" and parent.child_by_field_name("name") == node:
        return "keyword"
    return "name"


def _identifier(doc: SyntaxDocument, node: tree_sitter.Node) -> Identifier:
    start, end = doc.node_range(node)
    return Identifier(start, end, doc.text[start:end], _kind(node))


def identifier_at(doc: SyntaxDocument, start: int, end: int) -> Identifier | None:
    """The identifier that covers doc[start:end] (an edit inside or at the edge of one name)."""
    if doc.tree is None:
        return None
    lo, hi = doc.byte_of(start), doc.byte_of(end)
    for a, b in ((lo, hi), (max(0, lo - 1), hi), (lo, hi + 1)):
        node = doc.tree.root_node.descendant_for_byte_range(a, b)
        if node is not None and node.type in IDENTIFIERS:
            ident = _identifier(doc, node)
            if ident.start <= start and end <= ident.end:
                return ident
    return None


def _node_of(doc: SyntaxDocument, ident: Identifier) -> tree_sitter.Node | None:
    node = doc.tree.root_node.descendant_for_byte_range(doc.byte_of(ident.start), doc.byte_of(ident.end))
    return node if node is not None and node.type in IDENTIFIERS else None


def rename_scope(doc: SyntaxDocument, ident: Identifier, names: tuple[str, ...]) -> tuple[int, int]:
    """The region where `ident` (being renamed between `names`) is one variable: the innermost Python
    function that takes it as a parameter or binds it, else the whole document."""
    node = _node_of(doc, ident) if doc.tree is not None and doc.language == "python" else None
    if node is None or ident.kind != "name":
        return 0, len(doc.text)
    inner = node.parent
    while inner is not None:
        if inner.type in ("function_definition", "lambda"):
            if inner.child_by_field_name("name") == node:  # `def f`: f lives in the scope around the def
                inner = inner.parent
                continue
            params = inner.child_by_field_name("parameters")
            body = inner.child_by_field_name("body")
            bound = _py_parameter_names(params) if params is not None else set()
            if body is not None and inner.type == "function_definition":
                bound |= _py_level_bindings(body)
            if bound & set(names):
                return doc.node_range(inner)
        if inner.type == "class_definition" and inner.child_by_field_name("name") == node:
            inner = inner.parent
            continue
        inner = inner.parent
    return 0, len(doc.text)


def name_occurrences(doc: SyntaxDocument, name: str, kind: str, lo: int = 0, hi: int | None = None) -> list[Identifier]:
    """Identifiers spelled `name` of the given kind inside doc[lo:hi], in document order."""
    if doc.tree is None or not name:
        return []
    hi = len(doc.text) if hi is None else hi
    out: list[Identifier] = []
    node = doc.tree.root_node.descendant_for_byte_range(doc.byte_of(lo), doc.byte_of(hi))
    stack = [node] if node is not None else []
    needle = name.encode("utf-8")
    while stack:
        n = stack.pop()
        if n.type in IDENTIFIERS:
            if n.text == needle:
                ident = _identifier(doc, n)
                if ident.kind == kind and lo <= ident.start and ident.end <= hi:
                    out.append(ident)
            continue
        stack.extend(n.children)
    return sorted(out, key=lambda i: i.start)


def _callee(node: tree_sitter.Node) -> tree_sitter.Node | None:
    fn = node.child_by_field_name("function") or node.child_by_field_name("name")
    if fn is None and node.named_children:
        fn = node.named_children[0]
    while fn is not None and fn.type not in IDENTIFIERS:
        last = fn.child_by_field_name("attribute") or fn.child_by_field_name("property")
        last = last or fn.child_by_field_name("field")
        if last is None:
            return None
        fn = last
    return fn


def _call(doc: SyntaxDocument, node: tree_sitter.Node) -> Call | None:
    args = node.child_by_field_name("arguments")
    if args is None:
        args = next((c for c in node.children if c.type in _ARGUMENTS), None)
    fn = _callee(node)
    if args is None or fn is None or args.type not in _ARGUMENTS:
        return None
    start, end = doc.node_range(node)
    a_start, a_end = doc.node_range(args)
    spans = tuple(doc.node_range(c) for c in args.named_children if c.type != "comment")
    name = (fn.text or b"").decode("utf-8", "replace")
    return Call(start, end, name, a_start + 1, a_end - 1, spans)


def calls_named(doc: SyntaxDocument, callee: str) -> list[Call]:
    """Every call of `callee` in the document, in order."""
    if doc.tree is None or not callee:
        return []
    out, stack = [], [doc.tree.root_node]
    while stack:
        n = stack.pop()
        if n.type in _CALLS:
            call = _call(doc, n)
            if call is not None and call.callee == callee:
                out.append(call)
        stack.extend(n.children)
    return sorted(out, key=lambda c: c.start)


def call_around(doc: SyntaxDocument, start: int, end: int) -> Call | None:
    """The innermost call whose parentheses hold doc[start:end]."""
    if doc.tree is None:
        return None
    node = doc.tree.root_node.descendant_for_byte_range(doc.byte_of(start), doc.byte_of(end))
    while node is not None:
        if node.type in _CALLS:
            call = _call(doc, node)
            if call is not None and call.args_start <= start and end <= call.args_end:
                return call
        node = node.parent
    return None


@dataclass(frozen=True)
class Definition:
    name: str
    params_start: int  # just inside the parentheses
    params_end: int
    params: tuple[str, ...]  # each parameter's text


def definition_around(doc: SyntaxDocument, start: int, end: int) -> Definition | None:
    """The function whose parameter list holds doc[start:end]."""
    if doc.tree is None:
        return None
    node = doc.tree.root_node.descendant_for_byte_range(doc.byte_of(start), doc.byte_of(end))
    while node is not None and node.type not in _FUNCTIONS:
        node = node.parent
    if node is None:
        return None
    params, name = node.child_by_field_name("parameters"), node.child_by_field_name("name")
    if params is None or name is None:
        return None
    p_start, p_end = doc.node_range(params)
    if not (p_start < start and end < p_end):
        return None
    texts = tuple(doc.text[slice(*doc.node_range(c))] for c in params.named_children if c.type != "comment")
    return Definition(doc.text[slice(*doc.node_range(name))], p_start + 1, p_end - 1, texts)
