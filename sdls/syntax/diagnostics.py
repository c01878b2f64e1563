"""Finding work in a document: syntax errors (targets of fix-ups) and holes to fill (stubs, TODOs)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import tree_sitter

from .document import SyntaxDocument


@dataclass(frozen=True)
class SyntaxIssue:
    start: int  # character offsets; start == end for a missing token (it would go there)
    end: int
    message: str
    kind: str = "error"  # "error" (unexpected text) or "missing" (a token the parser had to assume)


@dataclass(frozen=True)
class Hole:
    start: int
    end: int
    kind: str  # "pass" | "ellipsis" | "not_implemented" | "todo" | "empty_body"
    enclosing_start: int  # the innermost enclosing definition, or the whole document
    enclosing_end: int
    enclosing_name: str | None


def syntax_errors(doc: SyntaxDocument) -> list[SyntaxIssue]:
    """ERROR nodes (outermost only) and MISSING nodes, in document order."""
    if doc.tree is None or not doc.tree.root_node.has_error:
        return []
    issues: list[SyntaxIssue] = []
    stack = [doc.tree.root_node]
    while stack:  # only subtrees that contain an error are visited
        node = stack.pop()
        if node.is_error:
            start, end = doc.node_range(node)
            issues.append(SyntaxIssue(start, end, _unexpected(node), "error"))
        elif node.is_missing:
            start = doc.offset_of(node.start_byte)
            what = f"`{node.type}`" if not node.is_named else node.type.replace("_", " ")
            issues.append(SyntaxIssue(start, start, f"missing {what}", "missing"))
        elif node.has_error:
            stack.extend(reversed(node.children))
    return issues


def _unexpected(node: tree_sitter.Node) -> str:
    """A short human reading of an ERROR node."""
    open_stack: list[str] = []
    for child in node.children:  # brackets the recovery left unmatched at this level
        if child.type in ("(", "[", "{"):
            open_stack.append(child.type)
        elif child.type in (")", "]", "}") and open_stack:
            open_stack.pop()
    if open_stack:
        return f"`{open_stack[-1]}` is never closed"
    leaves = []
    stack = [node]
    while stack and len(leaves) < 2:
        n = stack.pop()
        if n.child_count == 0:
            leaves.append(n)
        else:
            stack.extend(reversed(n.children))
    if len(leaves) == 1:
        token = (leaves[0].text or b"").decode("utf-8", errors="replace")[:40]
        return f"unexpected `{token}`"
    first_line = (node.text or b"").decode("utf-8", errors="replace").strip().split("\n")[0][:40]
    return f"cannot parse `{first_line}`" if first_line else "syntax error"


# ---- holes -------------------------------------------------------------------------------------

_TODO = re.compile(r"\bTODO\b", re.IGNORECASE)
_NOT_IMPLEMENTED = re.compile(r"not\s*implemented|\btodo\b|unimplemented", re.IGNORECASE)

# Per language: the node types that can be holes, each with its kind (or "check_*" for a text
# test). Found by walking the tree, not by a tree-sitter query: a query cursor is quadratic in the
# children of one node (50,000 unclosed brackets, one ERROR node: 4 s; the walk: 10 ms).
_HOLE_NODES: dict[str, dict[str, str]] = {
    "python": {
        "pass_statement": "pass",
        "ellipsis": "ellipsis",
        "raise_statement": "not_implemented",
        "comment": "todo",
    },
    "javascript": {"comment": "todo", "throw_statement": "check_throw", "statement_block": "empty_body"},
    "go": {"comment": "todo", "call_expression": "check_panic", "block": "empty_body"},
    "rust": {"line_comment": "todo", "block_comment": "todo", "macro_invocation": "check_macro", "block": "empty_body"},
    "lua": {"comment": "todo", "function_call": "check_error"},
}
_HOLE_NODES["typescript"] = _HOLE_NODES["tsx"] = _HOLE_NODES["javascript"]
_DEFINITIONS: dict[str, set[str]] = {
    "python": {"function_definition", "class_definition"},
    "javascript": {
        "function_declaration",
        "function_expression",
        "arrow_function",
        "method_definition",
        "class_declaration",
        "generator_function_declaration",
    },
    "go": {"function_declaration", "method_declaration", "func_literal"},
    "rust": {"function_item", "impl_item", "trait_item", "closure_expression"},
    "lua": {"function_declaration", "function_definition"},
}
_DEFINITIONS["typescript"] = _DEFINITIONS["tsx"] = _DEFINITIONS["javascript"] | {"interface_declaration"}
_NOT_STUB_PARENTS = {"except_clause", "except_group_clause", "finally_clause"}  # `except: pass` is idiomatic


def find_holes(doc: SyntaxDocument) -> list[Hole]:
    """Stubs and TODOs to fill, each with its innermost enclosing definition, in document order."""
    if doc.tree is None or doc.language is None:
        return []
    kinds = _HOLE_NODES.get(doc.language)
    if kinds is None:
        return []
    holes: list[Hole] = []
    for node, capture in _nodes_of(doc.tree, kinds):
        hole_kind = _hole_kind(doc.language, capture, node)
        if hole_kind:
            holes.append(_hole(doc, node, hole_kind))
    holes.sort(key=lambda h: (h.start, -h.end))
    kept: list[Hole] = []
    for hole in holes:  # a TODO inside an empty body is one hole, not two
        if kept and kept[-1].start <= hole.start and hole.end <= kept[-1].end:
            continue
        kept.append(hole)
    return kept


def _nodes_of(tree: tree_sitter.Tree, kinds: dict[str, str]):
    """(node, kinds[its type]) for every named node of a type in `kinds`, in document order."""
    cursor = tree.walk()
    while True:
        node = cursor.node
        if node is not None and node.is_named and (capture := kinds.get(node.type)) is not None:
            yield node, capture
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def _hole_kind(language: str, capture: str, node: tree_sitter.Node) -> str | None:
    text = (node.text or b"").decode("utf-8", errors="replace")
    if capture == "todo":
        return "todo" if _TODO.search(text) else None
    if capture in ("pass", "ellipsis"):
        return capture if _is_python_stub(node) else None
    if capture == "not_implemented":  # python raise
        return "not_implemented" if "NotImplementedError" in text else None
    if capture == "check_throw":
        return "not_implemented" if _NOT_IMPLEMENTED.search(text) else None
    if capture == "check_panic":
        fn = node.child_by_field_name("function")
        named_panic = fn is not None and fn.type == "identifier" and fn.text == b"panic"
        return "not_implemented" if named_panic and _NOT_IMPLEMENTED.search(text) else None
    if capture == "check_macro":
        macro = node.child_by_field_name("macro")
        named = macro is not None and macro.type == "identifier"
        return "not_implemented" if named and macro.text in (b"todo", b"unimplemented") else None
    if capture == "check_error":
        return "not_implemented" if text.startswith("error") and _NOT_IMPLEMENTED.search(text) else None
    if capture == "empty_body":
        parent = node.parent
        defs = _DEFINITIONS.get(language, set())
        is_body = parent is not None and parent.type in defs
        has_code = any(child.is_named and "comment" not in child.type for child in node.children)
        return "empty_body" if is_body and not has_code else None
    return None


def _is_python_stub(node: tree_sitter.Node) -> bool:
    """`pass`/`...` that is the whole body of its block (a docstring and comments aside)."""
    block = node.parent
    if block is None or block.type != "block":
        return False  # `x = ...` is a value, not a stub
    if block.parent is not None and block.parent.type in _NOT_STUB_PARENTS:
        return False
    statements = [c for c in block.named_children if c.type != "comment"]
    if statements and statements[0].type == "string" and len(statements) > 1:
        statements = statements[1:]  # docstring
    return all(c.type in ("pass_statement", "ellipsis") for c in statements)


def _hole(doc: SyntaxDocument, node: tree_sitter.Node, kind: str) -> Hole:
    start, end = doc.node_range(node)
    defs = _DEFINITIONS.get(doc.language or "", set())
    enclosing = node.parent
    while enclosing is not None and enclosing.type not in defs:
        enclosing = enclosing.parent
    if enclosing is None:
        return Hole(start, end, kind, 0, len(doc.text), None)
    name_node = enclosing.child_by_field_name("name")
    if name_node is None and enclosing.parent is not None:  # `const f = () => {...}`, `{f: function() {}}`
        holder = enclosing.parent
        name_node = next(
            (
                holder.child_by_field_name(f)
                for f in ("name", "left", "key")
                if holder.child_by_field_name(f) is not None
            ),
            None,
        )
    name = name_node.text.decode("utf-8", errors="replace") if name_node is not None else None
    e_start, e_end = doc.node_range(enclosing)
    return Hole(start, end, kind, e_start, e_end, name)
