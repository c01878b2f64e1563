"""Next-edit suggestions, the core: after the user's last edit, the one change sdls proposes next.

1. Candidate sites: the rules' sites (next_edit_rules.py: other uses of a renamed name in its scope,
   other calls of a function whose call or signature changed), then, for the model, other uses of the
   names the edit touched and the lines around it.
2. A rule's proposal stands as it is (`rewrite_rules` off, the default): the first that passes the
   check below is the suggestion, in the rules' order, without asking the model. A rule is right
   where it applies (the benchmark's rows: rules alone 43/43, the shipped model over them 16/43), and
   on a CPU the model's passes cost seconds, so the model works only where no rule's proposal fits.
3. The model's doubt ranks the sites left to it: each site's line is scored by `backend.doubt` over
   a window holding the site and, where it fits, the user's edit; the sites whose text the model
   finds least likely go first (a rule's site with no doubt keeps its place, a site only the model
   proposed is dropped). A site without a proposal gets an edit job (EditJob) over its line with its
   doubted spans re-masked, so the model writes them anew. With `rewrite_rules` the rules' sites are
   ranked with the rest and an edit job re-checks each proposal: it is written into the window first
   and the model may keep it, rewrite it, or undo it.
4. The first result that is a real change, parses (no new syntax errors), does not touch the text the
   user just typed and was not dismissed before is the suggestion, labelled with where it came from:
   "model" (no rule), "rule+model" (the model re-checked the rule's text and kept it),
   "model-over-rule" (the model rewrote it), "rule" (the rule's text: it stood, the model was off,
   or its rewrite did not parse).

Plain data in and out (document offsets); the caller binds the result to the document version.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sdls.syntax import SyntaxDocument
from sdls_model.jobs import EditJob, TextEdit

from .edit_history import EditEvent, EditHistory
from .edits import added_errors, apply_edits, edit_window
from .model_call import ModelCall, ensure_current, run_job
from .next_edit_rules import Candidate, name_candidates, nearby_candidates, rule_candidates

SOURCES = ("model", "rule+model", "model-over-rule", "rule")


@dataclass(frozen=True)
class NextEditOptions:
    rules: bool = True  # deterministic candidates (next_edit_rules.py)
    model: bool = True  # the model writes the edit where no rule's proposal fits (ranking sites by doubt)
    max_sites: int = 4  # sites the model scores
    max_jobs: int = 2  # edit jobs tried before giving up
    nearby_lines: int = 2  # lines after and before the edit offered to the model
    doubt_threshold: float = 0.1  # a site counts as doubted below this probability
    max_line_chars: int = 400  # longer lines are not rewritten
    max_window_chars: int = 8000  # the window grows to hold the user's edit only up to this
    rewrite_rules: bool = False  # the model ranks and re-checks the rules' proposals too (else they stand)


@dataclass(frozen=True)
class NextEdit:
    start: int  # replace doc[start:end] with text
    end: int
    text: str
    source: str  # one of SOURCES
    rule: str | None  # the rule that proposed the site, or None


@dataclass
class NextEditOutcome:
    edit: NextEdit | None
    reason: str  # why there is none, or how it was found
    stats: dict = field(default_factory=dict)  # forwards, doubt calls, jobs, ms


def _line_span(text: str, start: int, end: int) -> tuple[int, int]:
    return text.rfind("\n", 0, start) + 1, (len(text) if (nl := text.find("\n", end)) < 0 else nl)


def minimal_edit(old: str, new: str, offset: int) -> TextEdit | None:
    """One edit turning old into new (common prefix and suffix trimmed), offsets shifted by `offset`."""
    if old == new:
        return None
    p = 0
    while p < min(len(old), len(new)) and old[p] == new[p]:
        p += 1
    s = 0
    while s < min(len(old), len(new)) - p and old[len(old) - 1 - s] == new[len(new) - 1 - s]:
        s += 1
    return TextEdit(offset + p, offset + len(old) - s, new[p : len(new) - s])


def rejection_key(text: str, edit: TextEdit) -> tuple[str, str]:
    """What a dismissal remembers: the lines the edit changes, before and after (not offsets, which move)."""
    l_start, l_end = _line_span(text, edit.start, edit.end)
    line = text[l_start:l_end]
    return line, line[: edit.start - l_start] + edit.new_text + line[edit.end - l_start :]


def _touches_typed(edit: TextEdit, event: EditEvent) -> bool:
    """Would `edit` change the text the user just typed (replace or delete any of it)?"""
    return edit.start < event.end and edit.end > event.start


def check(doc: SyntaxDocument, edit: TextEdit | None, event: EditEvent, rejected: set) -> str | None:
    """Why `edit` cannot be suggested, or None."""
    if edit is None or (edit.start == edit.end and not edit.new_text):
        return "no change"
    if _touches_typed(edit, event):
        return "it would change the text just typed"
    if rejection_key(doc.text, edit) in rejected:
        return "dismissed before"
    if added_errors(doc, [edit]) > 0:
        return "it adds a syntax error"
    return None


def candidates(
    doc: SyntaxDocument,
    event: EditEvent,
    options: NextEditOptions,
    use_model: bool,
    rule_sites: list[Candidate] | None = None,
) -> list[Candidate]:
    """The sites, the rules' first; `rule_sites`: those already found by a call without the model."""
    found = list(rule_sites) if rule_sites is not None else rule_candidates(doc, event) if options.rules else []
    if use_model:
        found += name_candidates(doc, event, options.max_sites) + nearby_candidates(doc, event, options.nearby_lines)
    seen, out = set(), []
    for c in found:
        line = _line_span(doc.text, c.start, c.end)
        if (c.start, c.end) in seen or line[1] - line[0] > options.max_line_chars:
            continue
        seen.add((c.start, c.end))
        out.append(c)
    return out


async def suggest_next_edit(
    doc: SyntaxDocument,
    history: EditHistory,
    model: Callable[[], Awaitable[ModelCall | None]] | None,
    options: NextEditOptions = NextEditOptions(),
    rejected: set | frozenset = frozenset(),
) -> NextEditOutcome:
    """The next edit after the user's last one in `history`, for `doc` as it is now. `model` gives the
    model call (None: the rules alone); it is awaited only once the model is needed, so a rule's
    proposal never waits for a backend to open."""
    started = time.perf_counter()
    version = doc.version
    stats = {"forwards": 0, "doubt_calls": 0, "jobs": 0, "sites": 0}

    def done(edit: NextEdit | None, reason: str) -> NextEditOutcome:
        stats["ms"] = round((time.perf_counter() - started) * 1e3, 2)
        return NextEditOutcome(edit, reason, stats)

    if doc.tree is None:
        return done(None, "next edits need a language sdls parses (this document is plain text)")
    event = history.user_event(doc.text)
    if event is None:
        return done(None, "no edit of the user's to follow (none yet, or its text has gone)")
    use_model = model is not None and options.model
    rules_first = not (use_model and options.rewrite_rules)  # a rule's proposal stands: served at once
    rule_sites = candidates(doc, event, options, use_model=False)
    stats["sites"] = len(rule_sites)
    if rules_first and (found := _rule_proposal(doc, event, rule_sites, rejected)) is not None:
        return done(*found)
    call = await model() if use_model and model is not None else None
    if call is None:  # the rules alone (asked for, or the model is unavailable)
        found = None if rules_first else _rule_proposal(doc, event, rule_sites, rejected)
        return done(*found) if found else done(None, "no rule's proposal fits the last edit")
    ensure_current(doc, version)
    sites = candidates(doc, event, options, True, rule_sites)  # the model's own sites too (tens of ms: only now)
    stats["sites"] = len(sites)
    if not options.rewrite_rules:
        sites = [c for c in sites if c.proposal is None]  # what is left for the model to write
    ranked = await _rank(doc, event, sites[: options.max_sites], call, options, stats)
    reasons = []
    for cand, spans in ranked[: options.max_jobs]:
        edit, source, why = await _revise(doc, event, cand, spans, call, options, stats, rejected)
        if edit is not None:
            rule = cand.rule if cand.rule not in ("nearby", "name") else None
            return done(_as_next(edit, source, rule), source)
        reasons.append(f"{cand.rule} site: {why}")
    return done(None, "; ".join(reasons) or "the model doubts nothing near the last edit")


def _rule_proposal(doc, event, sites: list[Candidate], rejected) -> tuple[NextEdit, str] | None:
    """The first of the rules' proposals among `sites` that passes the check, with its reason, or None."""
    for c in sites:
        if c.proposal is not None and check(doc, c.proposal, event, rejected) is None:
            return _as_next(c.proposal, "rule", c.rule), f"rule {c.rule}"
    return None


def _as_next(edit: TextEdit, source: str, rule: str | None) -> NextEdit:
    return NextEdit(edit.start, edit.end, edit.new_text, source, rule)


def _window(text: str, start: int, end: int, event: EditEvent, call: ModelCall, cap: int) -> tuple[int, int]:
    """The edit window around [start, end), grown to hold the user's edit when that stays under `cap`."""
    w_start, w_end = edit_window(text, start, end, call.budget)
    lo, hi = min(w_start, _line_span(text, event.start, event.start)[0]), max(w_end, event.end)
    if hi - lo <= cap:
        hi = hi if hi == w_end else _line_span(text, hi, hi)[1]
        return lo, hi
    return w_start, w_end


async def _rank(doc, event, sites, call, options, stats) -> list[tuple[Candidate, list]]:
    """Sites by the model's doubt of their text (least likely first); a site only the model offered
    and that it does not doubt is dropped."""
    scored = []
    version = doc.version
    for order, cand in enumerate(sites):
        l_start, l_end = _line_span(doc.text, cand.start, cand.end)
        w_start, w_end = _window(doc.text, l_start, l_end, event, call, options.max_window_chars)
        raw = await call.backend.doubt(doc.text[w_start:w_end], l_start - w_start, l_end - w_start)
        ensure_current(doc, version)
        stats["doubt_calls"] += 1
        spans = [(s + w_start, e + w_start, p) for s, e, p in raw]
        focus = [(s, e, p) for s, e, p in spans if s <= cand.end and e >= cand.start]  # touching counts
        score = min((p for _, _, p in focus), default=1.0)
        if score >= options.doubt_threshold and cand.proposal is None:
            continue
        scored.append((score, order, cand, [sp for sp in spans if sp[2] < options.doubt_threshold]))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [(cand, spans) for _, _, cand, spans in scored]


async def _revise(doc, event, cand, spans, call, options, stats, rejected):
    """The model's edit job over the candidate's line: (edit, source, None) or (None, "", why not)."""
    text = doc.text
    proposal = cand.proposal
    job_text = apply_edits(text, [proposal]) if proposal is not None else text
    shift = len(proposal.new_text) - (proposal.end - proposal.start) if proposal is not None else 0
    l_start, l_end = _line_span(text, cand.start, cand.end)
    region = (l_start, l_end + shift)
    w_start, w_end = _window(job_text, region[0], region[1], event, call, options.max_window_chars)
    marked = [] if proposal is not None else [(s, e) for s, e, _ in spans if l_start <= s and e <= l_end]
    if proposal is None and not marked:
        return None, "", "the model doubts nothing there"
    job = EditJob(
        text=job_text[w_start:w_end],
        start=region[0] - w_start,
        end=region[1] - w_start,
        marked=[(s - w_start, e - w_start) for s, e in marked],
        settings=call.decode,
        edit_threshold=call.edit_threshold,
        max_rounds=call.budget.max_rounds,
    )
    result = await run_job(call, job, "rewrite", doc)
    stats["jobs"] += 1
    stats["forwards"] += result.stats.forwards
    new_line = _revised_region(job.text, job.start, job.end, result.edits)
    edit = minimal_edit(text[l_start:l_end], new_line, l_start)
    if proposal is not None:
        proposed = job_text[region[0] : region[1]]
        if edit is None:
            return None, "", "the model undid the rule's proposal"
        why = check(doc, edit, event, rejected)
        if why is None:
            return edit, "rule+model" if new_line == proposed else "model-over-rule", None
        if check(doc, proposal, event, rejected) is None:
            return proposal, "rule", None  # the model's rewrite is unusable; the rule's text stands
        return None, "", why
    why = check(doc, edit, event, rejected)
    return (edit, "model", None) if why is None else (None, "", why)


def _revised_region(window: str, start: int, end: int, edits: list[TextEdit]) -> str:
    """The text of window[start:end] after the job's edits (which lie inside the region)."""
    inside = [TextEdit(e.start - start, e.end - start, e.new_text) for e in edits if start <= e.start and e.end <= end]
    return apply_edits(window[start:end], inside)
