"""Does a candidate add syntax errors? Compare the document's errors before and after inserting it.

tree-sitter often wraps a whole broken statement in one ERROR node, so when the cursor's statement
is already broken (the user is mid-typing) "the same error, just longer" is ambiguous. Then the
statement around the cursor is parsed on its own, with the brackets it leaves open closed: if some
reading of it parses cleanly, the remaining error is only incompleteness and the candidate stands.
"""

from __future__ import annotations

import textwrap

from .diagnostics import SyntaxIssue, syntax_errors
from .document import SyntaxDocument
from .lexical import OPENERS, unclosed_openers

# A snippet is tried as it is, and for these languages also inside a function (statements) or
# after a package clause (declarations).
_WRAPPERS = {
    "go": [("package p\n", ""), ("package p\nfunc _() {\n", "\n}\n")],
    "rust": [("", ""), ("fn _f() {\n", "\n}\n")],
}
_MAX_STATEMENT_LINES = 30


def added_errors(doc: SyntaxDocument, offset: int, replace_end: int, text: str) -> str | None:
    """Why the candidate is rejected (the first syntax error it adds), or None."""
    if doc.tree is None:
        return None
    after = doc.with_edit(offset, replace_end, text)
    delta = len(text) - (replace_end - offset)
    inserted = (offset, offset + len(text))

    def shift(pos: int) -> int:
        return pos + delta if pos >= replace_end else min(pos, offset)

    old = []
    for e in syntax_errors(doc):
        start = shift(e.start)
        end = shift(e.end) if e.end > offset else e.end
        if e.start <= offset <= e.end:  # an error around the cursor grows with the insertion
            end = max(end, inserted[1])
        old.append(_through_blanks(after.text, start, max(start, end)))
    for issue in syntax_errors(after):
        overlapping = any(issue.start <= e and s <= issue.end for s, e in old)
        if not overlapping:
            return "adds a syntax error " + _where(after.text, issue)
        touches_insert = issue.start <= inserted[1] and inserted[0] <= issue.end
        if touches_insert and not _statement_parses(after, offset, inserted[1]):
            return "leaves a syntax error in the statement it completes " + _where(after.text, issue)
    return None


def _through_blanks(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span over the whitespace around it: a missing `}` reported at the end of the file is
    the same problem as the ERROR that used to stop just before the final newline."""
    while start > 0 and text[start - 1].isspace():
        start -= 1
    while end < len(text) and text[end].isspace():
        end += 1
    return start, end


def _statement_parses(doc: SyntaxDocument, start: int, end: int) -> bool:
    """Some statement around [start, end) of `doc` parses on its own once its open brackets close."""
    text = doc.text
    first_line = text.rfind("\n", 0, start) + 1
    last_line_end = text.find("\n", end)
    last_line_end = len(text) if last_line_end < 0 else last_line_end
    # Try from the cursor's line, then from lines further up (a call spread over lines).
    line_start = first_line
    for _ in range(_MAX_STATEMENT_LINES):
        if _parses_alone(text[line_start:last_line_end], doc.language):
            return True
        if line_start == 0:
            return False
        line_start = text.rfind("\n", 0, line_start - 1) + 1
    return False


def _parses_alone(snippet: str, language: str | None) -> bool:
    snippet = textwrap.dedent(snippet)
    closers = "".join(OPENERS[c] for _, c in reversed(unclosed_openers(snippet, language)))
    snippet = snippet.rstrip() + closers
    if language == "python" and snippet.endswith(":"):
        snippet += "\n    pass"
    for head, tail in _WRAPPERS.get(language or "", [("", "")]):
        probe = SyntaxDocument(head + snippet + tail, language)
        if probe.tree is not None and not probe.tree.root_node.has_error:
            return True
    return False


def _where(text: str, issue: SyntaxIssue) -> str:
    line = text.count("\n", 0, issue.start) + 1
    col = issue.start - (text.rfind("\n", 0, issue.start) + 1) + 1
    return f"at line {line}, column {col}: {issue.message}"
