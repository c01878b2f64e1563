"""Deterministic next-edit candidates: where the user's last edit must be repeated, read off the syntax
tree, and (where a rule can tell) the text to put there. No model: `next_edit.py` has the model check
or rewrite every proposal, and labels which of the two a suggestion came from.

Rules, tried on the last edit the user typed:
- rename: an identifier changed from `old` to `new` -> the other uses of `old` in its scope become `new`;
- call arguments: the arguments of a call to `f` changed -> the other calls of `f` get the same
  change (an argument appended, the i-th argument removed, or, where their arguments read as the edited
  call's did, the same new arguments);
- parameters: the i-th parameter of `def f` was removed -> the calls of `f` drop their i-th argument;
  a parameter was added -> the calls of `f` are sites for the model (no text: a rule cannot know it).
"""

from __future__ import annotations

from dataclasses import dataclass

from sdls.syntax import SyntaxDocument
from sdls.syntax.occurrences import (
    Call,
    call_around,
    calls_named,
    definition_around,
    identifier_at,
    name_occurrences,
    rename_scope,
)
from sdls_model.jobs import TextEdit

from .edit_history import EditEvent


@dataclass(frozen=True)
class Candidate:
    start: int  # the text the next edit is expected to change (document offsets)
    end: int
    rule: str  # "rename" | "call-arguments" | "parameter-removed" | "parameter-added" | "nearby" | "name"
    proposal: TextEdit | None = None  # the rule's own text for it, when a rule can tell


def _norm(text: str) -> str:
    return " ".join(text.split())


def _ordered(cands: list[Candidate], event: EditEvent) -> list[Candidate]:
    """Sites after the edit first (nearest first), then those before it (nearest first)."""
    after = sorted((c for c in cands if c.start >= event.end), key=lambda c: c.start)
    before = sorted((c for c in cands if c.start < event.end), key=lambda c: -c.start)
    return after + before


def _outside(c: Candidate, event: EditEvent) -> bool:
    return c.end <= event.start or c.start >= event.end


def rename_candidates(doc: SyntaxDocument, old_doc: SyntaxDocument, event: EditEvent) -> list[Candidate]:
    new = identifier_at(doc, event.start, event.end)
    old = identifier_at(old_doc, event.start, event.start + len(event.old))
    if new is None or old is None or new.name == old.name or new.start != old.start or new.kind != old.kind:
        return []
    lo, hi = rename_scope(doc, new, (old.name, new.name))
    sites = [
        i for i in name_occurrences(doc, old.name, new.kind, lo, hi) if i.end <= event.start or i.start >= event.end
    ]
    by_line: dict[int, list] = {}
    for i in sites:  # one candidate per line: `text = text.strip()` is renamed in one go
        by_line.setdefault(doc.text.count("\n", 0, i.start), []).append(i)
    cands = []
    for group in by_line.values():
        first, last = group[0], group[-1]
        piece = doc.text[first.start : last.end]
        for i in reversed(group):
            piece = piece[: i.start - first.start] + new.name + piece[i.end - first.start :]
        cands.append(Candidate(first.start, last.end, "rename", TextEdit(first.start, last.end, piece)))
    return _ordered([c for c in cands if _outside(c, event)], event)


def _arg_texts(doc: SyntaxDocument, call: Call) -> list[str]:
    return [_norm(doc.text[s:e]) for s, e in call.args]


def _removal(call: Call, index: int) -> TextEdit:
    """Drop argument `index` of `call` with the separator next to it."""
    s, e = call.args[index]
    if index + 1 < len(call.args):
        return TextEdit(s, call.args[index + 1][0], "")
    if index > 0:
        return TextEdit(call.args[index - 1][1], e, "")
    return TextEdit(s, e, "")


def _removed_index(old: list[str], new: list[str]) -> int | None:
    if len(new) != len(old) - 1:
        return None
    for i in range(len(old)):
        if old[:i] + old[i + 1 :] == new:
            return i
    return None


def call_candidates(doc: SyntaxDocument, old_doc: SyntaxDocument, event: EditEvent) -> list[Candidate]:
    call = call_around(doc, event.start, event.end)
    old_call = call_around(old_doc, event.start, event.start + len(event.old))
    if call is None or old_call is None or call.callee != old_call.callee or call.start != old_call.start:
        return []
    new_args, old_args = _arg_texts(doc, call), _arg_texts(old_doc, old_call)
    if new_args == old_args:
        return []
    appended = new_args[len(old_args) :] if new_args[: len(old_args)] == old_args else []
    added = doc.text[old_call.args[-1][1] if old_args else call.args_start : call.args[-1][1]] if appended else ""
    removed = _removed_index(old_args, new_args)
    cands = []
    for other in calls_named(doc, call.callee):
        if other.start == call.start:
            continue
        args = _arg_texts(doc, other)
        proposal = None
        if appended and args[-len(appended) :] != appended:
            text = added if args else added.lstrip(", ")
            at = other.args[-1][1] if args else other.args_start
            proposal = TextEdit(at, at, text)
        elif removed is not None and len(args) == len(old_args):
            proposal = _removal(other, removed)
        elif args == old_args:
            proposal = TextEdit(other.args_start, other.args_end, doc.text[call.args_start : call.args_end])
        if proposal is not None or not (appended or removed is not None):
            cands.append(Candidate(other.args_start, other.args_end, "call-arguments", proposal))
    return _ordered([c for c in cands if _outside(c, event)], event)


def parameter_candidates(doc: SyntaxDocument, old_doc: SyntaxDocument, event: EditEvent) -> list[Candidate]:
    new = definition_around(doc, event.start, event.end)
    old = definition_around(old_doc, event.start, event.start + len(event.old))
    if new is None or old is None or new.name != old.name:
        return []
    old_params, new_params = [_norm(p) for p in old.params], [_norm(p) for p in new.params]
    if old_params == new_params:
        return []
    removed = _removed_index(old_params, new_params)
    method = bool(old_params) and old_params[0] in ("self", "cls")
    cands = []
    for call in calls_named(doc, new.name):
        n = len(call.args)
        if removed is not None:
            index = removed - 1 if method and n == len(old_params) - 1 else removed
            if n in (len(old_params), len(old_params) - 1) and 0 <= index < n:
                cands.append(Candidate(call.args_start, call.args_end, "parameter-removed", _removal(call, index)))
        elif len(new_params) > len(old_params):
            cands.append(Candidate(call.args_start, call.args_end, "parameter-added"))
    return _ordered([c for c in cands if _outside(c, event)], event)


def rule_candidates(doc: SyntaxDocument, event: EditEvent) -> list[Candidate]:
    """What the rules say about `event` in `doc` (the text after it), best rule first."""
    if doc.tree is None or event.large or not event.holds(doc.text):
        return []
    old_doc = doc.with_edit(event.start, event.end, event.old)
    for rule in (rename_candidates, parameter_candidates, call_candidates):
        found = rule(doc, old_doc, event)
        if found:
            return found
    return []


def nearby_candidates(doc: SyntaxDocument, event: EditEvent, lines: int) -> list[Candidate]:
    """The lines just after and before the edit (for the model: the next edit is often there)."""
    text, cands = doc.text, []
    pos = event.end
    for _ in range(lines):  # lines after
        nl = text.find("\n", pos)
        if nl < 0:
            break
        start, end = nl + 1, text.find("\n", nl + 1)
        end = len(text) if end < 0 else end
        if text[start:end].strip():
            cands.append(Candidate(start, end, "nearby"))
        pos = end
    pos = text.rfind("\n", 0, event.start)
    for _ in range(lines):  # lines before
        if pos <= 0:
            break
        start = text.rfind("\n", 0, pos) + 1
        if text[start:pos].strip():
            cands.append(Candidate(start, pos, "nearby"))
        pos = start - 1
    return cands


def name_candidates(doc: SyntaxDocument, event: EditEvent, limit: int) -> list[Candidate]:
    """Other uses of the names the edit touched, before and after it, and other calls of the function
    whose call it changed (for the model: a name changed, its uses may follow)."""
    if doc.tree is None or event.large or not event.holds(doc.text):
        return []
    old_doc = doc.with_edit(event.start, event.end, event.old)
    names = {}
    for d, end in ((doc, event.end), (old_doc, event.start + len(event.old))):
        ident = identifier_at(d, event.start, end)
        if ident is not None:
            names[ident.name] = ident.kind
        call = call_around(d, event.start, end)
        if call is not None:
            names.setdefault(call.callee, "name")
    cands = []
    for name, kind in names.items():
        for i in name_occurrences(doc, name, kind):
            if i.end <= event.start or i.start >= event.end:
                call = call_around(doc, i.end, i.end + 1)
                end = call.args_end if call is not None and call.callee == name else i.end
                cands.append(Candidate(i.start, end, "name"))
    return _ordered(cands, event)[:limit]
