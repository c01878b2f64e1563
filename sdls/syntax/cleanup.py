"""Turn raw model output into a completion that fits the cursor's scope, or say why it does not.

Order matters: re-indent first (so later rules compare lines in the document's frame), then cut
what repeats the text after the cursor, then cut where the text leaves its scope, then check
that the result does not add syntax errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from .document import SyntaxDocument
from .lexical import (
    CLOSERS,
    OPENERS,
    bracket_events,
    closers_of_outer,
    leading_ws,
    next_nonblank_line,
    unclosed_openers,
)
from .scope import BLOCK, LINE, NONE, CompletionScope
from .verify import added_errors

_WINDOW = 20_000  # characters around the cursor read for bracket context (bounds the cost)
_INDENT_SCOPED = {"python"}  # languages where a dedent closes a block


@dataclass(frozen=True)
class Cleaned:
    text: str  # what to insert at the cursor
    replace_end: int  # insert over [offset, replace_end); <= scope.replace_end
    rejected: str | None  # None = usable; otherwise why the candidate was dropped


def clean_completion(doc: SyntaxDocument, offset: int, model_text: str, scope: CompletionScope) -> Cleaned:
    if scope.kind == NONE:
        return Cleaned("", offset, f"no completion here: {scope.reason}")
    line_start, line_end = doc.line_bounds(offset)
    before = doc.text[line_start:offset]
    cuts: list[str] = []

    lines = model_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if scope.kind == LINE:
        if len(lines) > 1:
            cuts.append("kept the first line (single-line scope)")
        lines = lines[:1]
    else:
        lines = _reindent_and_cut_dedent(lines, before, scope, doc.language, cuts)
    lines = _cut_at_next_document_line(lines, before, doc.text, line_end, cuts)
    lines = _cut_repeated_lines(lines, cuts)
    text = _trim_line_suffix("\n".join(lines), doc.text[scope.replace_end : line_end], cuts)

    replace_end = offset
    if not scope.in_literal:
        text, replace_end = _cut_at_foreign_closer(doc, offset, text, scope, cuts)
    text = text.rstrip()
    if scope.kind == BLOCK and "\n" in text and doc.text[offset:line_end].strip():
        text += "\n" + leading_ws(doc.text[line_start:line_end])  # `{|}`: keep the closer on its own line
    if not text.strip():
        why = cuts[-1] if cuts else "empty model output"
        return Cleaned("", offset, f"nothing left after clean-up ({why})")
    if doc.text[line_end - 1 : line_end + 1] == "\r\n" or doc.text[line_start - 2 : line_start] == "\r\n":
        text = text.replace("\n", "\r\n")  # keep the document's line endings

    added = added_errors(doc, offset, replace_end, text)
    if added is not None:
        return Cleaned(text, replace_end, added)
    return Cleaned(text, replace_end, None)


# ---- indentation ------------------------------------------------------------------------------


def _reindent_and_cut_dedent(
    lines: list[str], before: str, scope: CompletionScope, language: str | None, cuts: list[str]
) -> list[str]:
    """Shift lines 1.. from the model's indentation to scope.indent; stop at a dedent past the scope."""
    fresh_line = not before.strip()  # cursor on a blank line: line 0 starts a statement
    out = list(lines)
    if fresh_line and out[0].strip():
        model_base = before + leading_ws(out[0])
        pad = scope.indent[len(before) :] if scope.indent.startswith(before) else ""
        out[0] = pad + out[0].lstrip(" \t")
    else:
        body = [line for line in out[1:] if line.strip()]
        model_base = leading_ws(body[0]) if body else ""
    for i in range(1, len(out)):
        line = out[i]
        if not line.strip():
            out[i] = ""
            continue
        ws = leading_ws(line)
        if language in _INDENT_SCOPED and len(ws) < len(model_base):
            cuts.append(f"stopped at line {i + 1} of the completion: it dedents past the block")
            return out[:i]
        if len(ws) < len(model_base):  # shallower than the body (a closing `end`): keep the step back
            out[i] = scope.indent[: max(0, len(scope.indent) - (len(model_base) - len(ws)))] + line.lstrip(" \t")
            continue
        rest = line[len(model_base) :] if line.startswith(model_base) else line.lstrip(" \t")
        out[i] = scope.indent + rest
    return out


# ---- repeats ----------------------------------------------------------------------------------


def _cut_at_next_document_line(lines: list[str], before: str, text: str, line_end: int, cuts: list[str]) -> list[str]:
    """Stop where the completion reaches the first non-blank line below the cursor."""
    following = next_nonblank_line(text, line_end)
    if following is None:
        return lines
    following = following.rstrip()
    for i, line in enumerate(lines):
        candidate = (before + line) if i == 0 else line
        if (i > 0 or not before.strip()) and line.strip() and candidate.rstrip() == following:
            cuts.append("repeats the line below the cursor")
            return lines[:i] if i > 0 else [""]
    return lines


def _cut_repeated_lines(lines: list[str], cuts: list[str]) -> list[str]:
    """Degenerate output repeats one line over and over: keep the first copy."""
    for i in range(2, len(lines)):
        if lines[i].strip() and lines[i] == lines[i - 1] == lines[i - 2]:
            cuts.append("stopped at a line repeated three times")
            return lines[: i - 1]
    return lines


def _trim_line_suffix(text: str, rest_of_line: str, cuts: list[str]) -> str:
    """Drop a tail that repeats the text after the cursor on its line (e.g. `, y)` or `:`)."""
    suffix = rest_of_line.strip()
    body = text.rstrip()
    if suffix and body.endswith(suffix):
        cuts.append("repeats the text after the cursor")
        return body[: len(body) - len(suffix)]
    return text


# ---- brackets ---------------------------------------------------------------------------------


def _cut_at_foreign_closer(
    doc: SyntaxDocument, offset: int, text: str, scope: CompletionScope, cuts: list[str]
) -> tuple[str, int]:
    """Cut at a closing bracket the completion did not open, unless it closes a bracket the document
    leaves open or one of the replaced closers. Returns (text, replace_end)."""
    outer = _outer_brackets(doc, offset, scope.replace_end)  # innermost first: (closer, allowed, end)
    replace_end, used, own = offset, 0, []
    for pos, c in bracket_events(text, doc.language):
        if c in OPENERS:
            own.append(c)
            continue
        if own:
            if own[-1] == CLOSERS[c]:
                own.pop()
                continue
            cuts.append(f"stopped at `{c}`: it does not match `{own[-1]}`")
            return text[:pos], replace_end
        if used < len(outer) and outer[used][0] == c and outer[used][1]:
            if outer[used][2] is not None:  # a replaced closer: the replacement now covers it
                replace_end = outer[used][2]
            used += 1
            continue
        cuts.append(f"stopped at `{c}`: it closes a bracket the completion did not open")
        return text[:pos], replace_end
    return text, replace_end


def _outer_brackets(doc: SyntaxDocument, offset: int, replace_end: int) -> list[tuple[str, bool, int | None]]:
    """Brackets open at the cursor, innermost first: (closer char, may the completion close it,
    end offset of the replaced closer or None)."""
    start, end = _context_window(doc, offset)
    openers = unclosed_openers(doc.text[start:offset], doc.language)
    closers = closers_of_outer(doc.text[offset:end], doc.language)
    result = []
    for k, (_, opener) in enumerate(reversed(openers)):
        want = OPENERS[opener]
        if k >= len(closers):
            result.append((want, True, None))  # the document never closes it: the completion may
            continue
        pos = offset + closers[k][0]
        in_replaced = pos < replace_end
        result.append((want, in_replaced, pos + 1 if in_replaced else None))
    return result


# Nodes whose children are statements: the cursor's statement is the child of one of these.
_STATEMENT_LISTS = {
    "module",
    "block",
    "program",
    "statement_block",
    "source_file",
    "chunk",
    "class_body",
    "declaration_list",
    "statement_list",
    "field_declaration_list",
}


def _context_window(doc: SyntaxDocument, offset: int) -> tuple[int, int]:
    """The statement around the cursor (brackets do not cross statements), bounded in size."""
    lo, hi = max(0, offset - _WINDOW), min(len(doc.text), offset + _WINDOW)
    line_start, line_end = doc.line_bounds(offset)
    if doc.tree is None:  # plain text: the paragraph
        para_start = doc.text.rfind("\n\n", 0, offset)
        para_end = doc.text.find("\n\n", offset)
        return max(lo, para_start + 1), min(hi, len(doc.text) if para_end < 0 else para_end)
    node = doc.node_at(offset)
    # climb to a named child of a statement list (a list's own `{` token does not count)
    while (
        node is not None and node.parent is not None and (node.parent.type not in _STATEMENT_LISTS or not node.is_named)
    ):
        node = node.parent
    if node is None or node.type in _STATEMENT_LISTS:
        return line_start, line_end  # between statements: only this line
    start, end = doc.node_range(node)
    return max(lo, min(start, line_start)), min(hi, max(end, line_end))
