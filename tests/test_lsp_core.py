"""The server's core without LSP: documents, prompt windows, completion + cache, actions, fix-ups.

Model output is scripted (ScriptedBackend) so each test states exactly what the model "wrote";
the real engine is exercised end to end in test_lsp_e2e.py.
"""

from __future__ import annotations

import pytest
from lsp_fakes import ScriptedBackend

from sdls.lsp.actions import fill_stubs, hole_waves, offer_actions, resolve_offer
from sdls.lsp.completion import complete_at
from sdls.lsp.completion_cache import CachedCompletion, CompletionCache
from sdls.lsp.documents import DocumentStore, UnknownDocument
from sdls.lsp.edits import NoChange, apply_edits
from sdls.lsp.fixups import propose_fixup, render_diff
from sdls.lsp.model_call import ModelCall
from sdls.lsp.positions import PositionError
from sdls.lsp.prompt import build_prompt, declarations_header, prefix_window_start
from sdls.lsp.settings import ActionSettings
from sdls.syntax import SyntaxDocument, find_holes, syntax_errors
from sdls_model.jobs import TextEdit

URI = "file:///w/a.py"


def opened(text_with_cursor: str, language: str = "python", uri: str = URI):
    """A document from text with a `|` cursor marker, and the cursor offset."""
    offset = text_with_cursor.index("|")
    doc = DocumentStore().open(uri, language, 1, text_with_cursor.replace("|", "", 1))
    return doc, offset


async def complete(text_with_cursor, answer, cache=None, language="python", uri=URI, **kw):
    doc, offset = opened(text_with_cursor, language, uri)
    backend = ScriptedBackend(answer=lambda job: answer)
    outcome = await complete_at(doc, offset, ModelCall(backend), cache=cache, invoked=True, **kw)
    return outcome, backend, doc, offset


# -- completion -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source, model_text, expected, replaces",
    [
        ("def add(a, b):\n    return |\n", "a + b\n\ndef other():", "a + b", ""),  # single line: first line only
        ("x = foo(|)\n", "1, 2)", "1, 2)", ")"),  # replaces the trailing closer
        ("def f(x):\n    |\n", "y = x\n    return y\nprint(1)", "y = x\n    return y", ""),  # block; stops at dedent
    ],
)
async def test_completion_is_cleaned_for_its_scope(source, model_text, expected, replaces):
    outcome, backend, doc, offset = await complete(source, model_text)
    result = outcome.result
    assert result is not None, outcome.reason
    assert result.text == expected and result.source == "model"
    assert doc.text[result.start : result.end] == replaces
    job = backend.jobs[0]
    assert job.prefix == doc.text[:offset] and job.suffix == doc.text[offset:] and job.session == URI
    assert job.single_line == (outcome.scope == "line")  # the engine stops a one-line job at the break
    fixed = SyntaxDocument(doc.text[: result.start] + result.text + doc.text[result.end :], "python")
    assert syntax_errors(fixed) == []


async def test_no_model_call_where_no_completion_fits():
    outcome, backend, _, _ = await complete("value = ret|urn_it()\n", "x")
    assert outcome.result is None and "word" in outcome.reason and backend.jobs == []


async def test_output_that_breaks_the_syntax_is_rejected_and_the_rejection_cached():
    cache = CompletionCache()
    outcome, backend, doc, offset = await complete("def f(x):\n    return |\n", ")))) ((", cache=cache)
    assert outcome.result is None and "rejected" in outcome.reason
    again = await complete_at(doc, offset, ModelCall(backend), cache=cache, invoked=True)
    assert again.result is None and again.reason.startswith("cached") and len(backend.jobs) == 1


async def test_cache_serves_repeat_and_typing_along_without_model_calls():
    cache = CompletionCache()
    outcome, backend, doc, offset = await complete("def add(a, b):\n    return |\n", "a + b", cache=cache)
    assert outcome.result.text == "a + b"
    repeat = await complete_at(doc, offset, ModelCall(backend), cache=cache)
    assert repeat.result.text == "a + b" and repeat.result.source == "cache"
    doc.syntax.apply_edit(offset, offset, "a +")  # the user types the first characters shown
    along = await complete_at(doc, offset + 3, ModelCall(backend), cache=cache)
    assert along.result.text == " b" and along.result.source == "along"
    doc.syntax.apply_edit(offset + 3, offset + 3, "-")  # typing something else: a real miss
    await complete_at(doc, offset + 4, ModelCall(backend), cache=cache)
    assert len(backend.jobs) == 2


async def test_binary_document_gets_no_completion():
    doc = DocumentStore().open("file:///w/blob.bin", "plaintext", 1, "ab\x00\x01cd\n")
    backend = ScriptedBackend(answer=lambda job: "x")
    outcome = await complete_at(doc, 2, ModelCall(backend))
    assert outcome.result is None and "binary" in outcome.reason and backend.jobs == []


async def test_unknown_language_gets_plain_text_completion():
    outcome, _, doc, _ = await complete(
        "IDENTIFICATION DIVISION. |\n", "PROGRAM-ID. HELLO.\nmore", language="cobol", uri="file:///w/hello.cob"
    )
    assert doc.language is None
    assert outcome.result.text == "PROGRAM-ID. HELLO."


async def test_cross_file_header_goes_before_the_prefix():
    header = declarations_header("python", [("util.py", ["def helper(x): ..."])], 500)
    _, backend, doc, offset = await complete("import util\nx = |\n", "util.helper(1)", header=header)
    assert backend.jobs[0].prefix == "# from util.py:\ndef helper(x): ...\n\n" + doc.text[:offset]


# -- prompt windows, cache -----------------------------------------------------------------------
def test_prefix_window_start_stays_put_while_typing_and_starts_a_line():
    text = "".join(f"line {i:04d} = {i}\n" for i in range(2000))
    starts = {prefix_window_start(text, offset, 3000) for offset in range(20000, 20300)}
    assert len(starts) <= 2  # moves in jumps, not per keystroke
    for start in starts:
        assert text[start - 1] == "\n"
    prompt = build_prompt(text, 20000, 3000, 500)
    assert len(prompt.prefix) <= 3000 and len(prompt.suffix) <= 500 and prompt.suffix.endswith("\n")


def test_cache_is_lru_bounded_and_forgets_closed_documents():
    cache = CompletionCache(size=2)
    for i in range(3):
        cache.put("u", f"p{i}", "s", CachedCompletion(f"t{i}", 0))
    assert cache.get("u", "p0", "s") is None and cache.get("u", "p2", "s").text == "t2"
    cache.forget("u")
    assert cache.get("u", "p2", "s") is None


# -- documents ------------------------------------------------------------------------------------
def test_incremental_changes_in_utf16_positions():
    store = DocumentStore()
    store.open(URI, "python", 1, "s = '\U0001f600'\nx = 1\n")
    doc = store.change(URI, 2, [((0, 7, 0, 7), "!"), ((1, 4, 1, 5), "42")])
    assert doc.text == "s = '\U0001f600!'\nx = 42\n" and doc.version == 2
    assert syntax_errors(doc.syntax) == []
    doc = store.change(URI, 3, [(None, "y = (\n")])
    assert doc.text == "y = (\n" and syntax_errors(doc.syntax)


def test_bad_changes_and_unknown_documents_are_errors():
    store = DocumentStore()
    store.open(URI, "python", 1, "x\n")
    with pytest.raises(PositionError):
        store.change(URI, 2, [((5, 0, 5, 1), "y")])
    with pytest.raises(UnknownDocument, match=r"out of sync .*line 5 is past the end"):
        store.get(URI)  # refused until the editor reopens it
    assert store.open(URI, "python", 3, "x\n").text == "x\n" and store.get(URI).version == 3
    with pytest.raises(UnknownDocument, match="not open"):
        store.get("file:///never-opened.py")


def test_huge_documents_are_kept_as_plain_text():
    store = DocumentStore(max_chars=1_000_000)
    doc = store.open(URI, "python", 1, "x = 1\n" * 900_000)  # 5.4 MB
    assert doc.oversized and doc.language is None and doc.syntax.tree is None


# -- code actions ----------------------------------------------------------------------------------
STUBS = """class Shape:
    ...

class Circle(Shape):
    pass

def area(c: Circle) -> float:
    ...
"""


def test_offers_depend_on_what_is_at_the_range():
    doc = SyntaxDocument("def f(x):\n    return (x\n\ndef g():\n    pass\n", "python")
    titles = {o.action: (o.title, o.kind) for o in offer_actions(doc, 16, 24, ActionSettings())}
    assert titles["fix"][1] == "quickfix"
    assert titles["rewrite"] == ("Rewrite selection", "refactor.rewrite")
    assert titles["fill_stubs"][0] == "Fill in stub"
    assert titles["regenerate"][0] == "Regenerate body of f"
    none = offer_actions(doc, 16, 24, ActionSettings(fix=False, rewrite=False, fill_stubs=False, regenerate=False))
    assert none == []


def test_stub_waves_put_declarations_first():
    doc = SyntaxDocument(STUBS, "python")
    holes = find_holes(doc)
    names = [[holes[i].enclosing_name for i in wave] for wave in hole_waves(doc, holes)]
    assert names == [["Shape"], ["Circle"], ["area"]]


async def test_fill_stubs_runs_waves_in_order_and_later_waves_see_earlier_fills():
    fills = {"Shape": "sides = 0", "Circle": "radius = 1.0", "area": "return 3.14 * c.radius ** 2"}

    def answer(job):
        owner = [
            name
            for name in fills
            if f"{name}" in job.prefix.rsplit("\n", 3)[-2]
            or job.prefix.rstrip().endswith(f"{name}:")
            or f" {name}(" in job.prefix.rsplit("\n", 3)[-2]
        ]
        return fills[owner[-1]] if owner else "pass"

    backend = ScriptedBackend(answer=answer)
    doc = SyntaxDocument(STUBS, "python")
    reports = []
    edits = await fill_stubs(
        doc,
        ModelCall(backend),
        progress=lambda message, percent: reports.append(message),
    )
    result = apply_edits(STUBS, edits)
    assert "sides = 0" in result and "radius = 1.0" in result and "c.radius" in result
    assert syntax_errors(SyntaxDocument(result, "python")) == []
    assert "sides = 0" in backend.jobs[1].prefix  # wave 2 saw wave 1's code
    assert "radius = 1.0" in backend.jobs[2].prefix
    assert reports[:3] == ["wave 1/3: 1 stub(s)", "wave 2/3: 1 stub(s)", "wave 3/3: 1 stub(s)"]
    assert set(backend.lanes) == {"rewrite"}


async def test_rewrite_selection_maps_window_edits_to_document_offsets():
    text = "".join(f"a{i} = {i}\n" for i in range(2000)) + "total = a1 +  a2\n"
    start = text.index("total")
    end = len(text) - 1

    def edits(job):
        s = job.text.index("+  a2")
        return [TextEdit(s + 1, s + 3, " ")]

    backend = ScriptedBackend(edits=edits)
    doc = SyntaxDocument(text, "python")
    offer = next(o for o in offer_actions(doc, start, end, ActionSettings()) if o.action == "rewrite")
    result = await resolve_offer(doc, offer, ModelCall(backend))
    assert apply_edits(text, result).endswith("total = a1 + a2\n")
    assert len(backend.jobs[0].text) < len(text)  # only a window crossed the socket


async def test_rewrite_that_breaks_syntax_is_refused_unless_validation_is_off():
    text = "x = 1\n"
    backend = ScriptedBackend(edits=lambda job: [TextEdit(0, 1, "(((")])
    doc = SyntaxDocument(text, "python")
    offer = next(o for o in offer_actions(doc, 0, 5, ActionSettings()) if o.action == "rewrite")
    with pytest.raises(NoChange, match="syntax errors"):
        await resolve_offer(doc, offer, ModelCall(backend))
    edits = await resolve_offer(doc, offer, ModelCall(backend, validate=False))
    assert apply_edits(text, edits) == "((( = 1\n"


# -- fix-ups ---------------------------------------------------------------------------------------
BROKEN = "def f(x):\n    return g(x\n\nprint(f(1))\n"


async def test_fixup_proposes_a_repair_with_a_diff():
    def edits(job):
        at = job.text.index("g(x") + 3
        return [TextEdit(at, at, ")")]

    backend = ScriptedBackend(edits=edits)
    doc = SyntaxDocument(BROKEN, "python")
    fix = await propose_fixup(doc, BROKEN.index("g(x"), ModelCall(backend))
    assert fix.edits and apply_edits(BROKEN, fix.edits) == BROKEN.replace("g(x", "g(x)")
    assert "-    return g(x" in fix.diff and "+    return g(x)" in fix.diff
    assert backend.lanes == ["rewrite", "rewrite"]  # an insertion was tried first (it wrote nothing)
    job = backend.jobs[1]
    # The fix revises the lines the error touches, re-masking the error's first line.
    assert job.text[job.start : job.end] == "    return g(x\n\nprint(f(1))"
    assert [job.text[s:e] for s, e in job.marked] == ["return g(x"]


async def test_fixup_that_does_not_fix_says_why():
    backend = ScriptedBackend(edits=lambda job: [TextEdit(job.text.index("f(1)") + 2, job.text.index("f(1)") + 3, "2")])
    doc = SyntaxDocument(BROKEN, "python")
    fix = await propose_fixup(doc, BROKEN.index("g(x"), ModelCall(backend))
    assert fix.edits == [] and "does not reduce" in fix.reason


async def test_fixup_on_a_doubted_token():
    text = "x = 1\ny = x + - 2\n"  # parses fine: only the model objects to the `-`
    minus = text.index("-")
    backend = ScriptedBackend(
        doubts=lambda t, s, e: [(t.index("-"), t.index("-") + 1, 0.001)],
        edits=lambda job: [TextEdit(job.text.index("-"), job.text.index("-") + 2, "")],
    )
    doc = SyntaxDocument(text, "python")
    fix = await propose_fixup(doc, minus, ModelCall(backend))
    assert "doubts `-`" in fix.problem and apply_edits(text, fix.edits) == "x = 1\ny = x + 2\n"
    assert backend.jobs[0].marked == [(minus, minus + 1)]
    # Hovering where the model has no doubt offers nothing.
    assert await propose_fixup(doc, 0, ModelCall(backend)) is None


def test_render_diff_shows_only_touched_lines():
    text = "a\nb\nc\nd\n"
    diff = render_diff(text, [TextEdit(2, 3, "B")], context_lines=0)
    assert diff.splitlines() == ["-b", "+B"]


async def test_a_change_during_the_model_call_drops_the_result():
    from sdls.lsp.model_call import DocumentChanged

    doc, offset = opened("def add(a, b):\n    return |\n")

    def answer_while_the_user_types(job):
        doc.syntax.apply_edit(0, len(doc.text), "x")  # the text shrinks under the request
        return "a + b"

    with pytest.raises(DocumentChanged):
        await complete_at(doc, offset, ModelCall(ScriptedBackend(answer=answer_while_the_user_types)), invoked=True)
    live = SyntaxDocument(STUBS, "python")
    backend = ScriptedBackend(answer=lambda job: (live.apply_edit(0, 0, "\n"), "x = 1")[1])
    with pytest.raises(DocumentChanged):
        await fill_stubs(live, ModelCall(backend))


async def test_a_fix_that_deletes_the_broken_code_is_not_a_fix():
    region_start = BROKEN.index("    return g(x")
    backend = ScriptedBackend(edits=lambda job: [TextEdit(job.start, job.end, "")])
    doc = SyntaxDocument(BROKEN, "python")
    fix = await propose_fixup(doc, BROKEN.index("g(x"), ModelCall(backend))
    assert fix.edits == [] and "deletes the code" in fix.reason
    assert region_start == backend.jobs[-1].start


async def test_an_unclosed_bracket_is_first_tried_as_an_insertion():
    backend = ScriptedBackend(answer=lambda job: ")\n\nprint(f(1))")
    doc = SyntaxDocument(BROKEN, "python")
    fix = await propose_fixup(doc, BROKEN.index("g(x"), ModelCall(backend))
    assert apply_edits(BROKEN, fix.edits) == BROKEN.replace("g(x", "g(x)")
    assert len(backend.jobs) == 1 and backend.jobs[0].prefix.endswith("return g(x")
    assert fix.diff.splitlines()[-1] == "+    return g(x)"


async def test_fill_stubs_says_why_nothing_was_filled():
    backend = ScriptedBackend(answer=lambda job: ")))")
    with pytest.raises(NoChange, match=r"no stub was filled \(Shape: the model's text was rejected"):
        await fill_stubs(SyntaxDocument(STUBS, "python"), ModelCall(backend))
