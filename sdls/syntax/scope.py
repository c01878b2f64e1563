"""Where a completion may go at the cursor: nothing, the rest of one line, or a block of lines."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .document import SyntaxDocument
from .lexical import CLOSERS, indent_unit, leading_ws, next_nonblank_line

NONE, LINE, BLOCK = "none", "line", "block"


@dataclass(frozen=True)
class CompletionScope:
    kind: str  # "none" | "line" | "block"
    replace_end: int  # > offset when trailing closers on the line may be replaced (single-line range)
    reason: str  # why this kind, for logs and tests
    indent: str  # indentation of the lines a completion adds (the body's indent for a block)
    in_literal: bool = False  # invoked inside a string or comment: bracket rules do not apply


# Python compound statements whose header ends with ':' and opens an indented block.
_PY_HEADERS = {
    "function_definition",
    "class_definition",
    "if_statement",
    "elif_clause",
    "else_clause",
    "for_statement",
    "while_statement",
    "with_statement",
    "try_statement",
    "except_clause",
    "except_group_clause",
    "finally_clause",
    "match_statement",
    "case_clause",
    "decorated_definition",
}
_PY_BLOCK_KEYWORD = re.compile(r"\s*(async\s+)?(def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b")
_LUA_OPENER = re.compile(r"(\bthen|\bdo|\belse|\brepeat|\bfunction\b[^()]*\([^()]*\))\s*$")
_LUA_BODY_END = ("end", "else", "elseif", "until")
_INTERPOLATION = {"interpolation", "template_substitution", "format_expression"}
_STRINGISH = {"char_literal", "rune_literal", "template_string"}
_WORD = re.compile(r"\w")


def completion_scope(doc: SyntaxDocument, offset: int, invoked: bool) -> CompletionScope:
    """Decide what kind of completion fits at `offset` (a character offset into doc.text)."""
    text = doc.text
    if not 0 <= offset <= len(text):
        raise ValueError(f"offset {offset} is outside the document (length {len(text)})")
    line_start, line_end = doc.line_bounds(offset)
    before, after = text[line_start:offset], text[offset:line_end]
    line_indent = leading_ws(text[line_start:line_end])

    literal = _literal_at(doc, offset)
    if literal:
        if not invoked:
            return CompletionScope(NONE, offset, f"inside a {literal} (not invoked)", line_indent)
        return CompletionScope(LINE, offset, f"inside a {literal} (invoked)", line_indent, in_literal=True)
    if after[:1] and _WORD.match(after[:1]):
        reason = "inside a word" if before[-1:] and _WORD.match(before[-1:]) else "a word follows the cursor"
        return CompletionScope(NONE, offset, reason, line_indent)
    if not before.strip() and after.strip() and not _only_closers(after):
        return CompletionScope(NONE, offset, "cursor in the indentation before code", line_indent)

    replace_end = offset + len(after.rstrip()) if after.strip() and _only_closers(after) else offset
    if doc.language is None:
        return CompletionScope(LINE, replace_end, "plain text", line_indent)
    if (after.strip() == "" or _only_closers(after)) and _ends_block_header(doc, offset, before):
        return CompletionScope(BLOCK, offset, "end of a block header", line_indent + _indent_unit(doc))
    if not before.strip() and not after.strip():
        header_indent = _empty_body_header(doc, line_start, line_end)
        if header_indent is not None:
            # the user's own indentation wins when it is already deeper than the header's
            indent = before if len(before) > len(header_indent) else header_indent + _indent_unit(doc)
            return CompletionScope(BLOCK, offset, "empty block body", indent)
    return CompletionScope(LINE, replace_end, "single line", line_indent)


def _only_closers(s: str) -> bool:
    stripped = s.strip()
    return bool(stripped) and all(c in CLOSERS or c.isspace() for c in stripped)


def _indent_unit(doc: SyntaxDocument) -> str:
    if "indent_unit" not in doc.cache:
        doc.cache["indent_unit"] = indent_unit(doc.text)
    return doc.cache["indent_unit"]


def _literal_at(doc: SyntaxDocument, offset: int) -> str | None:
    """'string' or 'comment' when the cursor sits inside one, else None."""
    if doc.tree is None or offset == 0:
        return None
    b = doc.byte_of(offset)
    node = doc.node_at(offset)
    while node is not None:
        kind = node.type
        if kind in _INTERPOLATION:
            return None
        if "comment" in kind and node.start_byte < b:
            closed_block = node.end_byte == b and node.text.rstrip().endswith((b"*/", b"]]"))
            if b < node.end_byte or not closed_block:
                return "comment"
        if ("string" in kind or kind in _STRINGISH) and node.start_byte < b < node.end_byte:
            return "string"
        node = node.parent
    return None


def _ends_block_header(doc: SyntaxDocument, offset: int, before: str) -> bool:
    """True when the code before the cursor on its line ends with a block opener."""
    stripped = before.rstrip()
    if not stripped or doc.tree is None:
        return False
    last = offset - (len(before) - len(stripped)) - 1  # char offset of the last non-blank char
    b = doc.byte_of(last)
    token = doc.tree.root_node.descendant_for_byte_range(b, b + 1)
    if doc.language == "python":
        if stripped[-1] != ":" or token is None or token.type != ":":
            return False
        parent = token.parent
        if parent is not None and parent.type in _PY_HEADERS:
            return True
        # While typing, a header is often an ERROR node: trust the keyword at the line start.
        return parent is not None and parent.type == "ERROR" and bool(_PY_BLOCK_KEYWORD.match(before))
    if doc.language == "lua":
        return (
            bool(_LUA_OPENER.search(stripped))
            and token is not None
            and "comment" not in token.type
            and "string" not in token.type
        )
    return stripped[-1] == "{" and token is not None and token.type == "{"


def _empty_body_header(doc: SyntaxDocument, line_start: int, line_end: int) -> str | None:
    """For a blank line right under a block header whose body is empty: the header's indent."""
    text = doc.text
    prev_end = line_start - 1  # the '\n' ending the previous line
    while prev_end > 0:
        prev_start = text.rfind("\n", 0, prev_end) + 1
        prev_line = text[prev_start:prev_end]
        if prev_line.strip():
            break
        prev_end = prev_start - 1
    else:
        return None
    if not _ends_block_header(doc, prev_end, prev_line):
        return None
    header_indent = leading_ws(prev_line)
    next_line = next_nonblank_line(text, line_end)
    if next_line is None:
        return header_indent
    stripped = next_line.strip()
    if doc.language == "python":
        body_empty = len(leading_ws(next_line)) <= len(header_indent)
    elif doc.language == "lua":
        body_empty = stripped.startswith(_LUA_BODY_END)
    else:
        body_empty = stripped.startswith("}")
    return header_indent if body_empty else None
