"""Model-made changes to a region of a document: infill a region, revise a region, check the result.

Shared by code actions, hover fix-ups and `sdls fix`. Every function answers in document offsets
(TextEdit start/end index the text the caller passed), never in LSP positions.
"""

from __future__ import annotations

from sdls.syntax import CompletionScope, SyntaxDocument, clean_completion, completion_scope, syntax_errors
from sdls.syntax.scope import BLOCK, NONE
from sdls_model.jobs import EditJob, InfillJob, TextEdit

from .model_call import Budget, ModelCall, run_job
from .prompt import build_prompt, prefix_window_start, suffix_window_end


class NoChange(Exception):
    """The model offered nothing usable; the message says why (shown to the user)."""


def apply_edits(text: str, edits: list[TextEdit]) -> str:
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[: edit.start] + edit.new_text + text[edit.end :]
    return text


def with_edits(doc: SyntaxDocument, edits: list[TextEdit]) -> SyntaxDocument:
    """A copy of `doc` with non-overlapping edits applied (incremental reparse per edit)."""
    out = doc
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        out = out.with_edit(edit.start, edit.end, edit.new_text)
    return out


def added_errors(doc: SyntaxDocument, edits: list[TextEdit]) -> int:
    """How many more syntax errors the document has after the edits (negative: it has fewer)."""
    if doc.tree is None:
        return 0
    return len(syntax_errors(with_edits(doc, edits))) - len(syntax_errors(doc))


async def infill_region(doc: SyntaxDocument, start: int, end: int, call: ModelCall) -> TextEdit:
    """Replace doc[start:end] with what the model writes there, cleaned for the scope at `start` (rewrite lane)."""
    emptied = doc.with_edit(start, end, "") if end > start else doc
    scope = completion_scope(emptied, start, invoked=True)
    if scope.kind == NONE:
        line_start, _ = emptied.line_bounds(start)
        scope = CompletionScope(BLOCK, start, f"forced block ({scope.reason})", emptied.text[line_start:start])
    budget = call.budget
    prompt = build_prompt(emptied.text, start, budget.before, budget.after)
    job = InfillJob(prefix=prompt.prefix, suffix=prompt.suffix, max_new_tokens=budget.max_tokens, settings=call.decode)
    result = await run_job(call, job, "rewrite", doc)
    cleaned = clean_completion(emptied, start, result.text, scope)
    if cleaned.rejected is not None:
        raise NoChange(f"the model's text was rejected: {cleaned.rejected}")
    return TextEdit(start, end + cleaned.replace_end - start, cleaned.text)  # + trailing closers replaced


def edit_window(text: str, start: int, end: int, budget: Budget) -> tuple[int, int]:
    """Bounds of the text sent with an edit job: the region plus context, snapped to lines."""
    return prefix_window_start(text, start, budget.before), suffix_window_end(text, end, budget.after)


async def revise_region(
    doc: SyntaxDocument,
    start: int,
    end: int,
    call: ModelCall,
    *,
    marked: list[tuple[int, int]] = (),
) -> list[TextEdit]:
    """The model's revision of doc[start:end] (re-masking doubted and `marked` tokens), as document edits
    (rewrite lane)."""
    w_start, w_end = edit_window(doc.text, start, end, call.budget)
    job = EditJob(
        text=doc.text[w_start:w_end],
        start=start - w_start,
        end=end - w_start,
        marked=[(s - w_start, e - w_start) for s, e in marked],
        settings=call.decode,
        edit_threshold=call.edit_threshold,
        max_rounds=call.budget.max_rounds,
    )
    result = await run_job(call, job, "rewrite", doc)
    return [TextEdit(e.start + w_start, e.end + w_start, e.new_text) for e in result.edits]
