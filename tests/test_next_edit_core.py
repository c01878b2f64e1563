"""Next-edit suggestions, the core: the edit history, the rules' candidates, and suggest_next_edit with
a scripted model (doubt and edit jobs chosen by the test)."""

from __future__ import annotations

import asyncio

import pytest
from lsp_fakes import ScriptedBackend

from sdls.lsp.edit_history import EditHistory, changed_span
from sdls.lsp.model_call import ModelCall
from sdls.lsp.next_edit import NextEditOptions, check, minimal_edit, rejection_key, suggest_next_edit
from sdls.lsp.next_edit_rules import rule_candidates
from sdls.syntax import SyntaxDocument
from sdls_model.jobs import TextEdit

SRC = (
    "def area(width, height):\n"
    "    w = width * 2\n"
    "    return w * height + width\n"
    "\n"
    "\n"
    "def other(width):\n"
    "    return width\n"
    "\n"
    "\n"
    "print(area(1, 2))\n"
    "x = area(3, 4)\n"
)


def typed(history: EditHistory, text: str, steps: list[tuple[int, int, str]], version: int = 1) -> str:
    """Apply (start, end, new) changes one at a time, as keystrokes, recording each in `history`."""
    for start, end, new in steps:
        before, text = text, text[:start] + new + text[end:]
        version += 1
        history.observe(version, changed_span(before, text, start), before)
    return text


def retype(text: str, at: int, old: str, new: str) -> list[tuple[int, int, str]]:
    """Keystrokes that delete `old` at `at` and type `new` there one character at a time."""
    assert text[at : at + len(old)] == old
    return [(at, at + len(old), "")] + [(at + k, at + k, ch) for k, ch in enumerate(new)]


# -- history ------------------------------------------------------------------------------------------
def test_keystrokes_that_retype_a_name_merge_into_one_rename_event():
    h = EditHistory()
    text = typed(h, SRC, retype(SRC, 9, "width", "size"))
    assert [(e.start, e.old, e.new, e.version) for e in h.events] == [(9, "width", "size", 6)]
    assert h.user_event(text).new == "size"


def test_events_shift_with_the_text_before_them_and_vanish_when_overwritten():
    h = EditHistory()
    text = typed(h, SRC, [(SRC.index("w = width"), SRC.index("w = width") + 1, "ww")])  # event at line 2
    event = h.events[0]
    text = typed(h, text, [(0, 0, "# head\n")], version=2)  # text inserted before it moves it
    assert text[event.start : event.start + 6] == "ww = w" and event.new == "w" and event.holds(text)
    text = typed(h, text, [(event.start - 1, event.end + 1, "")], version=3)  # a change over it
    assert event.vanished and not event.holds(text)
    assert h.user_event(text).new == ""  # the newest event (the deletion) is the one to follow


def test_history_is_bounded_in_events_and_characters():
    h = EditHistory(max_events=4, max_chars=100)
    text = SRC
    for k in range(10):  # the start of line k each time: separate places, no merging
        at = [i + 1 for i, ch in enumerate(text) if ch == "\n"][k]
        text = typed(h, text, [(at, at, f"#{k}")], version=10 + k)
    assert len(h.events) == 4
    typed(h, text, [(0, 0, "y" * 90)], version=40)
    assert sum(len(e.old) + len(e.new) for e in h.events) <= 100 or len(h.events) == 1


def test_changed_span_uses_the_editors_hint_in_repeated_text():
    assert changed_span("hello", "helllo", 2) == (2, 2, "l")
    assert changed_span("hello", "helllo") == (4, 4, "l")
    assert changed_span("same", "same") is None


def test_minimal_edit_trims_what_did_not_change():
    assert minimal_edit("    return width", "    return size", 10) == TextEdit(21, 26, "size")
    assert minimal_edit("a", "a", 0) is None


# -- rules --------------------------------------------------------------------------------------------
def rules_after(steps_text: str, old: str, new: str, at: int):
    h = EditHistory()
    text = typed(h, SRC if steps_text is None else steps_text, retype(SRC, at, old, new))
    doc = SyntaxDocument(text, "python")
    return text, [
        (c.rule, text[c.start : c.end], c.proposal and c.proposal.new_text)
        for c in rule_candidates(doc, h.user_event(text))
    ]


def test_a_renamed_parameter_proposes_its_uses_in_its_function_only():
    text, cands = rules_after(None, "width", "size", SRC.index("width"))
    assert cands == [("rename", "width", "size"), ("rename", "width", "size")]
    h = EditHistory()
    text = typed(h, SRC, retype(SRC, SRC.index("width"), "width", "size"))
    sites = [c.start for c in rule_candidates(SyntaxDocument(text, "python"), h.user_event(text))]
    assert all(s < text.index("def other") for s in sites)  # other()'s own `width` is another variable


def test_a_renamed_function_proposes_its_call_sites():
    _, cands = rules_after(None, "area", "surface", SRC.index("area"))
    assert cands == [("rename", "area", "surface"), ("rename", "area", "surface")]


def test_an_argument_added_at_one_call_is_proposed_at_the_others():
    h = EditHistory()
    at = SRC.index("area(1, 2)") + len("area(1, 2")
    text = typed(h, SRC, [(at + k, at + k, ch) for k, ch in enumerate(", 5")])
    cands = rule_candidates(SyntaxDocument(text, "python"), h.user_event(text))
    assert [(c.rule, c.proposal.new_text) for c in cands] == [("call-arguments", ", 5")]
    p = cands[0].proposal
    assert (text[: p.start] + p.new_text + text[p.end :]).endswith("x = area(3, 4, 5)\n")


def test_a_removed_parameter_drops_the_argument_at_every_call():
    h = EditHistory()
    at = SRC.index(", height")
    text = typed(h, SRC, [(at, at + len(", height"), "")])
    cands = rule_candidates(SyntaxDocument(text, "python"), h.user_event(text))
    results = [text[: c.proposal.start] + text[c.proposal.end :] for c in cands]
    assert [c.rule for c in cands] == ["parameter-removed", "parameter-removed"]
    assert "print(area(1))" in results[0] and "x = area(3)" in results[1]


# -- suggest_next_edit --------------------------------------------------------------------------------
def renamed() -> tuple[SyntaxDocument, EditHistory]:
    h = EditHistory()
    text = typed(h, SRC, retype(SRC, SRC.index("width"), "width", "size"))
    return SyntaxDocument(text, "python"), h


def suggest(doc, h, backend=None, **options):
    async def model():
        return ModelCall(backend)

    rejected = options.pop("rejected", set())
    return asyncio.run(
        suggest_next_edit(doc, h, model if backend is not None else None, NextEditOptions(**options), rejected)
    )


def test_rules_alone_propose_the_next_use_and_say_so():
    doc, h = renamed()
    out = suggest(doc, h, None)
    assert out.edit.text == "size" and doc.text[out.edit.start : out.edit.end] == "width"
    assert out.edit.start == doc.text.index("width")  # the first use after the edit
    assert (out.edit.source, out.edit.rule) == ("rule", "rename")
    assert out.stats["forwards"] == 0 and out.stats["doubt_calls"] == 0


def test_by_default_a_rules_proposal_is_served_without_asking_the_model():
    doc, h = renamed()

    def edits(job):  # a model that would rewrite the proposal if it were asked
        line = job.text[job.start : job.end]
        at = job.start + line.index("* 2")
        return [TextEdit(at, at + 3, "* 3")]

    backend = ScriptedBackend(doubts=lambda t, s, e: [(s, e, 1e-6)], edits=edits)
    out = suggest(doc, h, backend)
    assert (out.edit.source, out.edit.rule, out.edit.text) == ("rule", "rename", "size")
    assert out.edit.start == doc.text.index("width")  # the rules' order: the first use after the edit
    assert backend.jobs == [] and out.stats["doubt_calls"] == 0 and out.stats["forwards"] == 0


def test_the_rules_sites_come_before_the_sites_only_the_model_offers():
    doc, h = renamed()

    def doubts(text, start, end):  # the model doubts a token no rule proposes anything for, most of all
        line = text[start:end]
        at = start + line.find("w * height")
        return [(at, at + 1, 1e-6)] if "w * height" in line else []

    def edits(job):
        return [TextEdit(job.start, job.end, job.text[job.start : job.end] + "  # changed")]

    backend = ScriptedBackend(doubts=doubts, edits=edits)
    out = suggest(doc, h, backend, max_sites=16)
    assert (out.edit.source, out.edit.text) == ("rule", "size") and backend.jobs == []
    flat = suggest(doc, h, ScriptedBackend(doubts=doubts, edits=edits), max_sites=16, rewrite_rules=True)
    assert flat.edit.source == "model"  # ranked by doubt alone, the model's own site went first


def test_the_model_confirming_a_proposal_is_labelled_rule_plus_model():
    doc, h = renamed()
    backend = ScriptedBackend(doubts=lambda t, s, e: [])  # the model keeps the proposed text as it is
    out = suggest(doc, h, backend, rewrite_rules=True)
    assert (out.edit.source, out.edit.text) == ("rule+model", "size")
    job = backend.jobs[0]
    assert "w = size * 2" in job.text[job.start : job.end]  # the model re-checked the rule's text


def test_the_model_rewriting_a_proposal_wins_and_is_labelled_model_over_rule():
    doc, h = renamed()

    def edits(job):
        line = job.text[job.start : job.end]
        at = job.start + line.index("* 2")
        return [TextEdit(at, at + 3, "* 3")]

    out = suggest(doc, h, ScriptedBackend(edits=edits), rewrite_rules=True)
    assert out.edit.source == "model-over-rule"
    assert doc.text[out.edit.start : out.edit.end] + "|" + out.edit.text == "width * 2|size * 3"


def test_a_rewrite_that_breaks_the_syntax_leaves_the_rules_text():
    doc, h = renamed()

    def edits(job):
        return [TextEdit(job.start, job.start, "((")]

    out = suggest(doc, h, ScriptedBackend(edits=edits), rewrite_rules=True)
    assert (out.edit.source, out.edit.text) == ("rule", "size")


def test_the_model_undoing_a_proposal_drops_that_site():
    doc, h = renamed()

    def undo(job):
        line = job.text[job.start : job.end]
        at = job.start + line.index("size")
        return [TextEdit(at, at + 4, "width")]

    out = suggest(doc, h, ScriptedBackend(edits=undo), max_jobs=1, rewrite_rules=True)
    assert out.edit is None and "undid the rule's proposal" in out.reason


def test_with_rewrite_rules_the_models_doubt_ranks_the_rules_sites():
    doc, h = renamed()
    last_use = doc.text.rindex("width", 0, doc.text.index("def other"))

    def doubts(text, start, end):  # the model doubts only the later use (its line is the third)
        return (
            [(start + text[start:end].index("width"), start + text[start:end].index("width") + 5, 0.001)]
            if ("return w" in text[start:end])
            else []
        )

    out = suggest(doc, h, ScriptedBackend(doubts=doubts), rewrite_rules=True)
    assert out.edit.start == last_use and out.edit.source == "rule+model"
    assert suggest(doc, h, ScriptedBackend(doubts=doubts)).edit.start == doc.text.index("width")  # default


def test_a_site_only_the_model_offers_needs_its_doubt_and_its_rewrite():
    h = EditHistory()
    src = "def f(a):\n    b = a + 1\n    return a\n"
    at = src.index("b = a") + 4
    text = typed(h, src, [(at, at + 1, "a * 2")])  # no rule applies: not a rename, not a call
    doc = SyntaxDocument(text, "python")

    def doubts(t, start, end):
        line = t[start:end]
        return [(start + line.index("a"), start + line.index("a") + 1, 0.01)] if "return a" in line else []

    def edits(job):
        line = job.text[job.start : job.end]
        at = job.start + line.index("a")
        return [TextEdit(at, at + 1, "b")] if "return a" in line else []

    backend = ScriptedBackend(doubts=doubts, edits=edits)
    out = suggest(doc, h, backend)
    assert (out.edit.source, out.edit.rule, out.edit.text) == ("model", None, "b")
    assert backend.jobs[0].marked  # the doubted span was re-masked for the model to rewrite
    assert suggest(doc, h, ScriptedBackend()).edit is None  # no doubt: the model proposes nothing


def test_never_an_edit_of_the_text_just_typed():
    doc, h = renamed()
    event = h.user_event(doc.text)

    def edits(job):  # the model wants to rename the parameter back
        at = job.text.index("size")
        return [TextEdit(at, at + 4, "width")]

    backend = ScriptedBackend(edits=edits, doubts=lambda t, s, e: [(s, e, 0.001)])
    out = suggest(doc, h, backend, rules=False)
    assert out.edit is None or not (out.edit.start < event.end and out.edit.end > event.start)


def test_a_dismissed_change_is_not_offered_again():
    doc, h = renamed()
    first = suggest(doc, h, None)
    key = rejection_key(doc.text, TextEdit(first.edit.start, first.edit.end, first.edit.text))
    assert key == ("    w = width * 2", "    w = size * 2")
    out = asyncio.run(suggest_next_edit(doc, h, None, NextEditOptions(), {key}))
    assert first.edit is not None and out.edit.start > first.edit.start  # the next use instead


def test_plain_text_and_no_history_give_a_reason_not_an_edit():
    out = suggest(SyntaxDocument("just words\n", None), EditHistory(), None)
    assert out.edit is None and "plain text" in out.reason
    out = suggest(SyntaxDocument(SRC, "python"), EditHistory(), None)
    assert out.edit is None and "no edit" in out.reason


@pytest.mark.parametrize("vanish", ["overwritten", "history from another text"])
def test_a_history_that_references_vanished_text_gives_nothing(vanish):
    doc, h = renamed()
    if vanish == "overwritten":
        text = doc.text.replace("def area(size,", "def area(sz,")  # replaced without the history seeing it
    else:
        text = "completely = 'different'\n"
    out = suggest(SyntaxDocument(text, "python"), h, ScriptedBackend())
    assert out.edit is None and "text has gone" in out.reason


def test_the_check_refuses_any_edit_of_the_text_just_typed():
    doc, h = renamed()
    event = h.user_event(doc.text)  # "size" at 9..13
    for start, end, text in ((9, 13, "width"), (11, 12, ""), (8, 10, "x")):
        assert check(doc, TextEdit(start, end, text), event, set()) == "it would change the text just typed"
    assert check(doc, TextEdit(13, 13, "_v"), event, set()) is None  # beside it: the user's text stays
