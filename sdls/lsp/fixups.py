"""Hover fix-ups, the core: at a position with a syntax error (or a token the model doubts), the
repair the model proposes, as edits plus a readable diff. `sdls fix` prints the same thing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from sdls.syntax import SyntaxDocument
from sdls.syntax.diagnostics import SyntaxIssue
from sdls_model.jobs import TextEdit

from .actions import fix_issue, issue_at, issue_region
from .edits import NoChange, apply_edits, edit_window, revise_region
from .model_call import ModelCall, ensure_current


@dataclass
class FixUp:
    problem: str  # what is wrong, in words
    start: int  # the span the problem covers (the hover range)
    end: int
    edits: list[TextEdit] = field(default_factory=list)  # empty: no usable repair (see `reason`)
    reason: str = ""
    diff: str = ""


def render_diff(text: str, edits: list[TextEdit], context_lines: int = 1) -> str:
    """A unified diff of the lines the edits touch (no file headers)."""
    if not edits:
        return ""
    lo = min(e.start for e in edits)
    hi = max(e.end for e in edits)
    start = text.rfind("\n", 0, lo) + 1
    end = text.find("\n", hi)
    end = len(text) if end < 0 else end
    shifted = [TextEdit(e.start - start, e.end - start, e.new_text) for e in edits]
    old, new = text[start:end], apply_edits(text[start:end], shifted)
    lines = difflib.unified_diff(old.split("\n"), new.split("\n"), lineterm="", n=context_lines)
    return "\n".join(line for line in lines if not line.startswith(("---", "+++", "@@")))


async def propose_fixup(
    doc: SyntaxDocument,
    offset: int,
    call: ModelCall,
    *,
    use_doubt: bool = True,
    doubt_threshold: float = 0.05,
) -> FixUp | None:
    """The fix-up at `offset`, or None when there is nothing to fix there."""
    return await fixup_for(
        doc, offset, issue_at(doc, offset), call, use_doubt=use_doubt, doubt_threshold=doubt_threshold
    )


async def fixup_for(
    doc: SyntaxDocument,
    offset: int,
    issue: SyntaxIssue | None,
    call: ModelCall,
    *,
    use_doubt: bool = True,
    doubt_threshold: float = 0.05,
) -> FixUp | None:
    """propose_fixup once the syntax error at `offset` (`issue_at`, or None) is known: the server
    finds it off the event loop."""
    if issue is not None:
        fix = FixUp(f"syntax error: {issue.message}", issue.start, max(issue.end, issue.start))
        try:
            fix.edits = await fix_issue(doc, issue, call)
        except NoChange as exc:
            fix.reason = str(exc)
    elif use_doubt and doc.text.strip():
        start, end = issue_region(doc, _Point(offset))
        w_start, w_end = edit_window(doc.text, start, end, call.budget)
        version = doc.version
        spans = await call.backend.doubt(doc.text[w_start:w_end], start - w_start, end - w_start)
        ensure_current(doc, version)
        hit = next(
            (
                (s + w_start, e + w_start, p)
                for s, e, p in spans
                if s + w_start <= offset <= e + w_start and p < doubt_threshold
            ),
            None,
        )
        if hit is None:
            return None
        s, e, p = hit
        fix = FixUp(f"the model doubts `{doc.text[s:e].strip()}` (p={p:.3f})", s, e)
        try:
            fix.edits = await revise_region(doc, start, end, call, marked=[(s, e)])
        except NoChange as exc:
            fix.reason = str(exc)
        if not fix.edits:
            return None  # a doubt the model cannot improve on is not worth a hover
    else:
        return None
    if fix.edits:
        fix.diff = render_diff(doc.text, fix.edits)
    elif not fix.reason:
        fix.reason = "the model proposes no change"
    return fix


@dataclass(frozen=True)
class _Point:
    """A zero-width span, for issue_region on a plain position."""

    start: int

    @property
    def end(self) -> int:
        return self.start
