"""Code actions, the core: what can be offered at a range (cheap, no model) and what each one
computes when the editor resolves it (the model runs only then).

"Rewrite selection"        revise the selected text where the model doubts it
"Fill in stubs"            fill every stub of the document, declarations before uses (plan_blocks waves)
"Regenerate function body" infill the body of the function around the cursor
"Fix this error"           revise the lines of a syntax error with the error span re-masked
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sdls.syntax import SyntaxDocument, find_holes, plan_blocks, syntax_errors
from sdls.syntax.diagnostics import Hole, SyntaxIssue
from sdls_model.jobs import InfillJob, TextEdit

from .edits import NoChange, added_errors, apply_edits, infill_region, revise_region, with_edits
from .model_call import ModelCall, ensure_current, run_job
from .prompt import build_prompt
from .settings import ActionSettings

REWRITE, QUICKFIX = "refactor.rewrite", "quickfix"
FILLABLE = ("pass", "ellipsis", "not_implemented", "empty_body")  # TODO comments stay: they are notes
_FUNCTIONS = {
    "function_definition",
    "function_declaration",
    "method_definition",
    "function_expression",
    "arrow_function",
    "method_declaration",
    "func_literal",
    "function_item",
    "generator_function_declaration",
}

Progress = Callable[[str, int], Awaitable[None] | None]


@dataclass(frozen=True)
class Offer:
    action: str  # "rewrite" | "fill_stubs" | "regenerate" | "fix"
    title: str
    kind: str  # LSP code action kind
    start: int  # the range it works on (document offsets)
    end: int
    issue: SyntaxIssue | None = None


def function_body_at(doc: SyntaxDocument, offset: int) -> tuple[int, int, str] | None:
    """(start, end, name) of the region holding the body of the innermost function around `offset`."""
    node = doc.node_at(offset) if doc.tree is not None else None
    while node is not None and node.type not in _FUNCTIONS:
        node = node.parent
    if node is None:
        return None
    body = node.child_by_field_name("body")
    if body is None:
        return None
    start, end = doc.node_range(body)
    if doc.text[start : start + 1] == "{" and doc.text[end - 1 : end] == "}":
        start, end = start + 1, end - 1  # keep the braces, regenerate what is inside
    name_node = node.child_by_field_name("name")
    name = name_node.text.decode("utf-8", "replace") if name_node is not None else "<anonymous>"
    return start, end, name


def hole_region(doc: SyntaxDocument, hole: Hole) -> tuple[int, int]:
    if hole.kind == "empty_body" and doc.text[hole.start : hole.start + 1] == "{":
        return hole.start + 1, hole.end - 1
    return hole.start, hole.end


def offer_actions(doc: SyntaxDocument, start: int, end: int, actions: ActionSettings) -> list[Offer]:
    """The actions `actions` switches on that apply to doc[start:end] (no model call)."""
    if not actions.enabled:
        return []
    offers: list[Offer] = []
    if actions.fix:
        for issue in syntax_errors(doc):
            if issue.start <= end and max(issue.end, issue.start + 1) >= start:
                offers.append(Offer("fix", f"Fix this error: {issue.message}", QUICKFIX, issue.start, issue.end, issue))
                break
    if actions.rewrite and end > start:
        offers.append(Offer("rewrite", "Rewrite selection", REWRITE, start, end))
    if actions.fill_stubs:
        holes = [h for h in find_holes(doc) if h.kind in FILLABLE]
        if holes:
            title = "Fill in stub" if len(holes) == 1 else f"Fill in {len(holes)} stubs"
            offers.append(Offer("fill_stubs", title, REWRITE, holes[0].start, holes[-1].end))
    if actions.regenerate:
        body = function_body_at(doc, start)
        if body is not None:
            offers.append(Offer("regenerate", f"Regenerate body of {body[2]}", REWRITE, body[0], body[1]))
    return offers


ACTIONS = {"rewrite": REWRITE, "fill_stubs": REWRITE, "regenerate": REWRITE, "fix": QUICKFIX}


def offer_problem(doc: SyntaxDocument, offer: Offer) -> str | None:
    """Why an offer a client echoed back is not one this document could have made (None: it is).
    Offsets must lie inside the text, and a fix must name a syntax error the document has now:
    the server trusts nothing it once sent out."""
    if ACTIONS.get(offer.action) != offer.kind:
        return f"unknown action {offer.action!r} of kind {offer.kind!r}"
    spans = [(offer.start, offer.end)] + ([(offer.issue.start, offer.issue.end)] if offer.issue else [])
    for start, end in spans:
        if not 0 <= start <= end <= len(doc.text):
            return f"the region {start}..{end} is outside the document (length {len(doc.text)})"
    if offer.action == "fix" and (offer.issue is None or offer.issue not in syntax_errors(doc)):
        return "the error this fix is for is not in the document"
    if offer.action == "rewrite" and offer.end == offer.start:
        return "a rewrite needs a selection"
    return None


async def _report(progress: Progress | None, message: str, percent: int) -> None:
    if progress is not None:
        maybe = progress(message, percent)
        if asyncio.iscoroutine(maybe):
            await maybe


async def resolve_offer(
    doc: SyntaxDocument, offer: Offer, call: ModelCall, *, progress: Progress | None = None
) -> list[TextEdit]:
    """Run the model for `offer` and return its edits (document offsets); NoChange if nothing usable."""
    if offer.action == "rewrite":
        edits = await revise_region(doc, offer.start, offer.end, call)
    elif offer.action == "fix":
        return await fix_issue(doc, offer.issue, call)
    elif offer.action == "regenerate":
        edits = [await infill_region(doc, offer.start, offer.end, call)]
    elif offer.action == "fill_stubs":
        edits = await fill_stubs(doc, call, progress=progress)
    else:
        raise ValueError(f"unknown action {offer.action!r}")
    if not edits:
        raise NoChange("the model proposes no change here")
    if call.validate and added_errors(doc, edits) > 0:
        raise NoChange("the model's change would add syntax errors; nothing applied")
    if call.validate and offer.action == "rewrite" and not keeps_the_code(doc.text, offer.start, offer.end, edits, 0.0):
        raise NoChange("the model's rewrite would delete the selection; nothing applied")
    return edits


async def fill_stubs(doc: SyntaxDocument, call: ModelCall, *, progress: Progress | None = None) -> list[TextEdit]:
    """Fill every stub, one plan_blocks wave at a time: a wave's holes decode together (one batch in
    the worker), and later waves see the code earlier waves wrote."""
    holes = [h for h in find_holes(doc) if h.kind in FILLABLE]
    if not holes:
        raise NoChange("no stubs to fill")
    waves = hole_waves(doc, holes)
    done: list[TextEdit] = []  # in original document offsets
    skipped: list[str] = []  # why a stub was left as it is
    for number, wave in enumerate(waves):
        await _report(progress, f"wave {number + 1}/{len(waves)}: {len(wave)} stub(s)", 100 * number // len(waves))
        current = with_edits(doc, done)
        shifted = [_shift(hole_region(doc, holes[i]), done) for i in wave]
        version = doc.version
        results = await asyncio.gather(
            *[infill_region(current, s, e, call) for s, e in shifted],
            return_exceptions=True,
        )
        ensure_current(doc, version)  # `current` is a copy: check the live document here
        for i, (_, e), result in zip(wave, shifted, results):
            if isinstance(result, NoChange):
                skipped.append(f"{holes[i].enclosing_name or 'a stub'}: {result}")
                continue  # leave that stub as it is; the others still count
            if isinstance(result, BaseException):
                raise result
            start, end = hole_region(doc, holes[i])
            # result is in `current` offsets; its end may reach past the hole over trailing closers.
            done.append(TextEdit(start, end + (result.end - e), result.new_text))
    await _report(progress, "done", 100)
    if not done:
        raise NoChange("no stub was filled (" + "; ".join(skipped) + ")")
    return sorted(done, key=lambda t: t.start)


def _shift(span: tuple[int, int], applied: list[TextEdit]) -> tuple[int, int]:
    """Where an original-document span lies after `applied` (edits that do not overlap it)."""
    delta = sum(len(t.new_text) - (t.end - t.start) for t in applied if t.end <= span[0])
    return span[0] + delta, span[1] + delta


def hole_waves(doc: SyntaxDocument, holes: list[Hole]) -> list[list[int]]:
    """Hole indices grouped in waves by the def-use plan of the code around them.

    The plan covers one region from the first to the last enclosing definition, so it is split at
    the level of those definitions: a stub in `class Circle(Shape)` waits for the stubs of `Shape`,
    and one in `def area(c: Circle)` for those of `Circle`.
    """
    region = (min(h.enclosing_start for h in holes), max(h.enclosing_end for h in holes))
    plan = plan_blocks(doc, [region])
    wave_of_block = plan.wave_of()
    waves: dict[int, list[int]] = {}
    for i, hole in enumerate(holes):
        block = next((b for b, blk in enumerate(plan.blocks) if blk.start <= hole.start and hole.end <= blk.end), None)
        waves.setdefault(wave_of_block[block] if block is not None else 0, []).append(i)
    return [waves[w] for w in sorted(waves)]


def issue_at(doc: SyntaxDocument, offset: int) -> SyntaxIssue | None:
    for issue in syntax_errors(doc):
        if issue.start <= offset <= max(issue.end, issue.start + 1):
            return issue
    return None


def issue_region(doc: SyntaxDocument, issue: SyntaxIssue, max_lines: int = 8) -> tuple[int, int]:
    """The whole lines an error touches (at most `max_lines` of them): the unit a fix revises."""
    start = doc.text.rfind("\n", 0, issue.start) + 1
    end = doc.text.find("\n", max(issue.end, issue.start))
    end = len(doc.text) if end < 0 else end
    cap = start
    for _ in range(max_lines):
        nxt = doc.text.find("\n", cap + 1 if cap > start else cap)
        if nxt < 0:
            return start, end
        cap = nxt
    return start, min(end, cap)


async def fix_issue(doc: SyntaxDocument, issue: SyntaxIssue, call: ModelCall) -> list[TextEdit]:
    """Repair one syntax error. A missing token or an unclosed bracket is first tried as a short
    insertion (what is usually missing is a closer); otherwise, or if that does not help, the
    error's lines are revised with the error span re-masked."""
    start, end = issue_region(doc, issue)
    reasons = []
    at = insertion_point(doc, issue)
    if at is not None:
        insert = await _insert_at(doc, at, call)
        if insert is not None and (not call.validate or added_errors(doc, [insert]) < 0):
            return [insert]
        reasons.append("an insertion did not close it")
    # Re-mask the error's first line (an unclosed bracket's ERROR node can run to the end of the
    # file); the engine re-masks whatever else it doubts in the region by itself.
    first_line_end = doc.text.find("\n", issue.start)
    mark_end = min(issue.end, first_line_end if first_line_end >= 0 else issue.end)
    mark = (
        (issue.start, mark_end) if mark_end > issue.start else (max(start, issue.start - 1), min(end, issue.start + 1))
    )
    edits = await revise_region(doc, start, end, call, marked=[mark])
    if not edits:
        raise NoChange("; ".join(reasons + ["the model proposes no change for this error"]))
    if call.validate and added_errors(doc, edits) >= 0:
        raise NoChange("; ".join(reasons + ["the model's proposal does not reduce the syntax errors"]))
    if call.validate and not keeps_the_code(doc.text, start, end, edits):
        raise NoChange("; ".join(reasons + ["the model's proposal deletes the code instead of repairing it"]))
    return edits


def insertion_point(doc: SyntaxDocument, issue: SyntaxIssue) -> int | None:
    """Where a short insertion may repair the issue: the spot of a missing token, or the end of the
    line that opens a bracket that is never closed."""
    if issue.kind == "missing":
        return issue.start
    if "never closed" in issue.message:
        line_end = doc.text.find("\n", issue.start)
        line_end = len(doc.text) if line_end < 0 else line_end
        return issue.start + len(doc.text[issue.start : line_end].rstrip())
    return None


async def _insert_at(doc: SyntaxDocument, at: int, call: ModelCall) -> TextEdit | None:
    prompt = build_prompt(doc.text, at, call.budget.before, call.budget.after)
    job = InfillJob(
        prefix=prompt.prefix, suffix=prompt.suffix, max_new_tokens=8, settings=call.decode, single_line=True
    )
    result = await run_job(call, job, "rewrite", doc)
    text = result.text.split("\n", 1)[0].rstrip()
    return TextEdit(at, at, text) if text.strip() else None


def keeps_the_code(text: str, start: int, end: int, edits: list[TextEdit], min_ratio: float = 0.6) -> bool:
    """A repair changes a little and keeps the rest: deleting a broken line also 'removes' its error."""
    local = [TextEdit(e.start - start, e.end - start, e.new_text) for e in edits]
    old, new = text[start:end], apply_edits(text[start:end], local)
    old_code, new_code = "".join(old.split()), "".join(new.split())
    return bool(new_code) and difflib.SequenceMatcher(None, old_code, new_code, autojunk=False).ratio() >= min_ratio
