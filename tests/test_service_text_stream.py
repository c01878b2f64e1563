"""Where a served completion ends and what a streaming client is sent: stop strings, llama.cpp's
n_indent, the t_max_predict_ms deadline (on a fake clock), half characters held back."""

from __future__ import annotations

import asyncio

from sdls.service.generation import Outcome, generate
from sdls.service.text_stream import TextStream, cut_at_dedent, cut_at_stop
from sdls_model.jobs import CancelToken, InfillJob, JobResult, JobStats


def test_cut_at_stop_takes_the_earliest_stop_string():
    assert cut_at_stop("a = 1\nb = 2\n", ["b", "\n"]) == ("a = 1", "\n")
    assert cut_at_stop("abc", ["x"]) == ("abc", None)


def test_cut_at_dedent_keeps_the_first_line_and_lines_indented_enough():
    text = "x + 1\n    y = 2\n\n    z\nprint(z)\n"
    assert cut_at_dedent(text, 4) == ("x + 1\n    y = 2\n\n    z", True)
    assert cut_at_dedent(text, 0) == (text, False)
    assert cut_at_dedent("a\n\tb\n", 1) == ("a\n\tb\n", False)  # a tab counts as one, as in llama.cpp


def test_a_stream_never_sends_what_it_would_take_back():
    s = TextStream(stops=["\n\n"])
    assert s.feed("def f():\n") == "def f():"  # the "\n" may start the stop string: held back
    assert s.feed("def f():\n    return 1\n\nprint") == "\n    return 1"
    assert s.stop_type == "word" and s.stopping_word == "\n\n"
    assert s.feed("anything later", final=True) == ""
    assert s.sent == "def f():\n    return 1"


def test_half_a_character_waits_for_its_other_bytes():
    s = TextStream()
    assert s.feed("caf\ufffd") == "caf"
    assert s.feed("café!") == "é!"


def test_with_a_minimum_indent_only_whole_lines_go_out_until_the_end():
    s = TextStream(min_indent=4)
    assert s.feed("total = 0\n    for") == "total = 0\n"
    assert s.feed("total = 0\n    for x in xs:\n") == "    for x in xs:\n"
    assert s.feed("total = 0\n    for x in xs:\n    pass", final=True) == "    pass"
    assert s.stop_type is None


def test_the_deadline_ends_at_the_last_line_break_but_never_before_what_was_sent():
    s = TextStream()
    s.feed("a\nb")
    assert s.end_at_line("a\nbc\nd") == "c"
    assert s.sent == "a\nbc" and s.stop_type == "limit"


class ScriptedModel:
    """A backend whose job reports the given block texts in order; it honours its CancelToken between them."""

    def __init__(self, blocks: list[str]):
        self.blocks = blocks
        self.backend = self
        self.reported = 0

    async def run(self, job, lane="inline"):
        job.cancel = CancelToken()
        text = ""
        for text in self.blocks:
            if job.cancel.cancelled:
                break
            job.on_block(text)
            self.reported += 1
            await asyncio.sleep(0)  # let the consumer see the block, as the engine thread would
            await asyncio.sleep(0)
        tokens = list(range(len(text)))
        return JobResult(text, tokens, JobStats(forwards=self.reported), job.cancel.cancelled)

    def count_tokens(self, text: str) -> int:
        return len(text)


async def collect(model, stream, deadline_s=None, clock=None, max_new=64):
    job = InfillJob("p", "", max_new)
    items = [i async for i in generate(model, job, stream, deadline_s, clock=clock or (lambda: 0.0))]
    return "".join(i for i in items if isinstance(i, str)), items[-1]


async def test_a_stop_string_cancels_the_job_at_its_next_step():
    model = ScriptedModel(["x = 1\n", "x = 1\ny = 2\n", "x = 1\ny = 2\nz = 3\n", "never"])
    text, outcome = await collect(model, TextStream(stops=["y"]))
    assert text == "x = 1\n" and outcome.stop_type == "word" and outcome.stopping_word == "y"
    assert model.reported == 2  # the block after the stop was never decoded
    assert outcome.tokens == len("x = 1\n")


async def test_the_deadline_ends_the_text_once_a_line_is_complete():
    model = ScriptedModel(["a", "a\nb", "a\nb\nc", "a\nb\nc\nd"])
    ticks = iter([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.1])
    text, outcome = await collect(model, TextStream(), deadline_s=0.2, clock=lambda: next(ticks))
    # The first report is before the deadline; the second is after it and has a line break.
    assert text == "a" and outcome.stop_type == "limit"
    assert model.reported == 2


async def test_without_an_early_end_the_answer_is_the_jobs_text():
    model = ScriptedModel(["ab", "abcd"])
    text, outcome = await collect(model, TextStream(), max_new=4)
    assert isinstance(outcome, Outcome) and text == outcome.text == "abcd"
    assert outcome.stop_type == "limit"  # 4 tokens of a budget of 4
    _, outcome = await collect(ScriptedModel(["ab"]), TextStream(), max_new=8)
    assert outcome.stop_type == "eos"
