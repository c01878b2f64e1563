"""Def-use links inside a span of a Python file: which identifier declares a name that a later one reads.

A binding occurrence is a name being declared: a function or class name, a parameter, an
assignment / for / with / except / walrus target, an imported name. Every other plain identifier
(not an attribute after a dot, not a keyword argument's name) is a use. Each use is linked to the
nearest binding of the same name before it inside the span; uses whose declaration lies outside
the span (in the context) have no link. Scopes are read textually, which is what matters for the
order a span is written in: the declaration comes first in the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import tree_sitter

from .document import SyntaxDocument

_PATTERNS = {"pattern_list", "tuple_pattern", "list_pattern", "tuple", "list", "parenthesized_expression"}
_PARAMETER_LISTS = {"parameters", "lambda_parameters"}
_PARAMETERS = {
    "default_parameter",
    "typed_default_parameter",
    "typed_parameter",
    "list_splat_pattern",
    "dictionary_splat_pattern",
}


@dataclass(frozen=True)
class DefUse:
    name: str
    decl_start: int  # character offsets into the document
    decl_end: int
    use_start: int
    use_end: int


def _is_target(node: tree_sitter.Node, field_holder: str, field_name: str) -> bool:
    """Is `node` a plain name inside the `field_name` side of an enclosing `field_holder` node?"""
    child, parent = node, node.parent
    while parent is not None and parent.type in _PATTERNS | {"list_splat_pattern"}:
        child, parent = parent, parent.parent
    return parent is not None and parent.type == field_holder and parent.child_by_field_name(field_name) == child


def is_binding(node: tree_sitter.Node) -> bool:
    parent = node.parent
    if parent is None:
        return False
    t = parent.type
    if t in ("function_definition", "class_definition"):
        return parent.child_by_field_name("name") == node
    if t in _PARAMETER_LISTS:
        return True
    if t in _PARAMETERS:
        name = parent.child_by_field_name("name")
        first = next((c for c in parent.named_children if c.type == "identifier"), None)
        return node == (name or first) and parent.parent is not None and parent.parent.type in _PARAMETER_LISTS
    if t == "named_expression":
        return parent.child_by_field_name("name") == node
    if t == "as_pattern_target" or (
        t in _PATTERNS and parent.parent is not None and parent.parent.type == "as_pattern_target"
    ):
        return True
    if t == "aliased_import":
        return parent.child_by_field_name("alias") == node
    if t == "dotted_name":  # `import a.b` binds a; `from m import a` binds a
        holder = parent.parent
        if holder is not None and holder.type == "import_statement":
            return parent.named_children[0] == node
        if holder is not None and holder.type == "import_from_statement":
            return holder.child_by_field_name("module_name") != parent
        return False
    return (
        _is_target(node, "assignment", "left")
        or _is_target(node, "for_statement", "left")
        or _is_target(node, "for_in_clause", "left")
    )


def _is_use(node: tree_sitter.Node) -> bool:
    parent = node.parent
    if parent is None:
        return True
    if parent.type == "attribute" and parent.child_by_field_name("attribute") == node:
        return False
    if parent.type == "keyword_argument" and parent.child_by_field_name("name") == node:
        return False
    return parent.type not in ("dotted_name", "aliased_import", "import_prefix", "relative_import")


def def_use_links(doc: SyntaxDocument, start: int, end: int) -> list[DefUse]:
    """The links inside doc.text[start:end] of a Python document, in the order of their uses."""
    if doc.tree is None or doc.language != "python":
        return []
    root = doc.tree.root_node.descendant_for_byte_range(doc.byte_of(start), doc.byte_of(end))
    found: list[tuple[int, int, str, bool]] = []
    stack = [root] if root is not None else []
    while stack:
        n = stack.pop()
        if n.type == "identifier":
            s, e = doc.node_range(n)
            if start <= s and e <= end:
                if is_binding(n):
                    found.append((s, e, doc.text[s:e], True))
                elif _is_use(n):
                    found.append((s, e, doc.text[s:e], False))
            continue
        stack.extend(n.children)
    found.sort()
    latest: dict[str, tuple[int, int]] = {}
    links: list[DefUse] = []
    for s, e, name, binding in found:
        if binding:
            latest[name] = (s, e)
        elif name in latest:
            links.append(DefUse(name, *latest[name], s, e))
    return links
