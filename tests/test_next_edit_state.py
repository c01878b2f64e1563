"""The server's next-edit state (NextEdits): versioned suggestions, shared and cancelled computations,
prefetch after an edit settles, and bad input: edits while a suggestion is computed, huge and binary
documents, clients that never say shown or accepted."""

from __future__ import annotations

import asyncio

from lsp_fakes import ScriptedBackend

from sdls.lsp.documents import DocumentStore
from sdls.lsp.model_call import ModelCall
from sdls.lsp.next_edit_state import RECENT, NextEdits
from sdls.lsp.settings import NextEditSettings

SRC = "def area(width, height):\n    w = width * 2\n    return w * height + width\n"
URI = "file:///a.py"


class Harness:
    """A document store and a NextEdits wired as the server wires them (didChange -> observe)."""

    def __init__(self, backend=None, text: str = SRC, language: str = "python", **settings):
        self.store = DocumentStore(max_chars=settings.pop("max_chars", 2_000_000))
        self.doc = self.store.open(URI, language, 1, text)
        self.timers: list = []
        self.settings = NextEditSettings(**{"debounce_ms": 0, **settings})
        self.ne = NextEdits(lambda: self.settings, call_later=self._call_later)
        self.backend = backend or ScriptedBackend()

        async def model_call():
            return ModelCall(self.backend)

        self.ne.model_call = model_call

    def _call_later(self, delay_s, callback):
        handle = FakeTimer(delay_s, callback)
        self.timers.append(handle)
        return handle

    def change(self, start: int, end: int, new: str) -> None:
        before = self.doc.text
        self.doc = self.store.change(URI, self.doc.version + 1, [(self._span(start, end), new)])
        self.ne.observe(self.doc, before, start)

    def _span(self, start: int, end: int):
        (sl, sc), (el, ec) = self.doc.position(start), self.doc.position(end)
        return (sl, sc, el, ec)

    def rename_width(self) -> None:
        at = self.doc.text.index("width")
        self.change(at, at + 5, "")
        for k, ch in enumerate("size"):
            self.change(at + k, at + k, ch)


class FakeTimer:
    def __init__(self, delay_s, callback):
        self.delay_s, self.callback, self.cancelled = delay_s, callback, False

    def cancel(self):
        self.cancelled = True

    def fire(self):
        assert not self.cancelled
        return self.callback()


def run(coro):
    return asyncio.run(coro)


def test_a_suggestion_is_served_for_its_version_and_dropped_once_the_document_moves_on():
    async def go():
        h = Harness(model=False)
        h.rename_width()
        v = h.doc.version
        s, _ = await h.ne.request(h.doc, v)
        assert s.version == v and s.edit.text == "size" and h.ne.current[URI] is s
        again, why = await h.ne.request(h.doc, v)
        assert again is s and why == "ready"  # no second computation
        h.change(0, 0, "# x\n")
        assert URI not in h.ne.current  # stale: gone with its version
        stale, why = await h.ne.request(h.doc, v)
        assert stale is None and f"version {v}" in why

    run(go())


def test_an_edit_while_the_suggestion_is_computed_cancels_it_and_the_request_gets_nothing():
    async def go():
        gate, entered = asyncio.Event(), asyncio.Event()

        class Slow(ScriptedBackend):
            async def doubt(self, text, start, end):
                entered.set()
                await gate.wait()  # the model is still working when the edit arrives
                return []

        h = Harness(Slow(), rewrite_rules=True)  # the model ranks the rename's sites: it is asked
        h.rename_width()
        request = asyncio.ensure_future(h.ne.request(h.doc, h.doc.version))
        await entered.wait()
        h.change(len(h.doc.text), len(h.doc.text), "# typed on\n")  # the user keeps typing
        suggestion, why = await request
        assert suggestion is None and "changed while" in why
        assert h.backend.jobs == []  # the edit job never started: the computation was cancelled
        assert URI not in h.ne.current

    run(go())


def test_requests_for_one_version_share_one_computation():
    async def go():
        gate = asyncio.Event()

        class Held(ScriptedBackend):
            doubts_asked = 0

            async def doubt(self, text, start, end):
                self.doubts_asked += 1
                await gate.wait()  # both requests are waiting on the model now
                return []

        alone = Harness(Held(), rewrite_rules=True)
        alone.rename_width()
        gate.set()
        await alone.ne.request(alone.doc, alone.doc.version)
        gate.clear()
        h = Harness(Held(), rewrite_rules=True)
        h.rename_width()
        v = h.doc.version
        a = asyncio.ensure_future(h.ne.request(h.doc, v))
        b = asyncio.ensure_future(h.ne.request(h.doc, v))
        await asyncio.sleep(0)  # let both reach the model (no time passes: one turn of the loop)
        gate.set()
        (sa, _), (sb, _) = await asyncio.gather(a, b)
        assert sa is sb is not None
        assert h.backend.doubts_asked == alone.backend.doubts_asked > 0  # one computation's model calls
        assert h.ne.counters["served_ready"] == 0

    run(go())


def test_after_a_client_asked_once_a_settled_edit_is_computed_ahead():
    async def go():
        h = Harness(debounce_ms=250)
        h.rename_width()
        assert h.timers == []  # no client has asked: nothing is computed ahead
        await h.ne.request(h.doc, h.doc.version)
        at = h.doc.text.index("return")
        h.change(at, at, "x")
        h.change(at + 1, at + 1, "y")
        assert [t.cancelled for t in h.timers] == [True, False]  # each keystroke restarts the wait
        assert h.timers[-1].delay_s == 0.25
        task = h.timers[-1].fire()
        await task
        jobs = len(h.backend.jobs)
        s, why = await h.ne.request(h.doc, h.doc.version)
        assert why == "ready" or s is None  # served from the computation made ahead
        assert len(h.backend.jobs) == jobs and h.ne.counters["prefetched"] == 1

    run(go())


def test_a_client_that_never_says_shown_or_accepted_leaves_bounded_state_and_nothing_applied():
    async def go():
        h = Harness(model=False)
        h.rename_width()
        end = h.doc.text.index("size") + 4
        for k in range(3 * RECENT):
            s, _ = await h.ne.request(h.doc, h.doc.version)
            assert s is not None and s.edit.text == h.doc.text[end - 4 - k : end]
            h.change(end, end, "x")  # the user types on (the name grows); nothing is accepted
            end += 1
        assert len(h.ne.recent) <= RECENT and len(h.ne.current) <= 1
        name = "size" + "x" * 3 * RECENT
        assert h.doc.text == SRC.replace("width", name, 1)  # the only changes are the user's
        assert h.ne.counters["accepted"] == 0 and h.ne.counters["shown"] == 0

    run(go())


def test_shown_accepted_and_rejected_are_counted_and_a_rejected_change_is_not_offered_again():
    async def go():
        h = Harness(model=False)
        h.rename_width()
        s, _ = await h.ne.request(h.doc, h.doc.version)
        assert h.ne.shown(s.id) and h.ne.counters["shown"] == 1
        assert h.ne.rejected_by_user(s.id)
        again, _ = await h.ne.request(h.doc, h.doc.version)
        assert again is not None and again.edit.start != s.edit.start  # the other use instead
        assert not h.ne.accepted("nes-unknown") and not h.ne.shown("nes-unknown")

    run(go())


def test_an_accepted_suggestion_is_recorded_as_such_and_the_chain_goes_on():
    async def go():
        h = Harness(model=False)
        h.rename_width()
        typed = h.ne.histories[URI].events[-1]
        s, _ = await h.ne.request(h.doc, h.doc.version)
        h.change(s.edit.start, s.edit.end, s.edit.text)  # the editor applies it...
        assert h.ne.accepted(s.id)  # ...then runs the accept command
        events = list(h.ne.histories[URI].events)
        assert events[-1].accepted and events[-2] is typed
        nxt, _ = await h.ne.request(h.doc, h.doc.version)
        assert nxt.edit.text == "size" and nxt.edit.start > s.edit.start  # the next use of the rename
        h.change(nxt.edit.start, nxt.edit.end, nxt.edit.text)
        last, _ = await h.ne.request(h.doc, h.doc.version)
        assert last is None and "width" not in h.doc.text

    run(go())


def test_huge_and_binary_documents_get_no_history_and_no_suggestion():
    async def go():
        for text, language, limit in (
            (SRC + "x = 1\n" * 2000, "python", 1000),  # larger than maxDocumentChars
            ("\x00\x01binary" + SRC, "python", 2_000_000),
        ):
            h = Harness(text=text, language=language, max_chars=limit)
            h.change(len(h.doc.text), len(h.doc.text), "more")
            assert URI not in h.ne.histories
            s, why = await h.ne.request(h.doc, h.doc.version)
            assert s is None and why
            assert h.backend.jobs == []

    run(go())


def test_a_model_that_fails_or_is_unavailable_gives_a_reason_or_the_rules_alone():
    from sdls.worker.client import ModelUnavailable, WorkerError

    async def go():
        class Broken(ScriptedBackend):
            async def doubt(self, text, start, end):
                raise WorkerError("worker died")

        h = Harness(Broken(), rewrite_rules=True)
        h.rename_width()
        s, why = await h.ne.request(h.doc, h.doc.version)
        assert s is None and "worker died" in why
        h = Harness(Broken())  # by default the rule's proposal is served and the model never asked
        h.rename_width()
        s, _ = await h.ne.request(h.doc, h.doc.version)
        assert s.edit.source == "rule"

        h = Harness(rewrite_rules=True)  # the model is needed, and cannot be had: the rules alone
        h.rename_width()

        async def unavailable():
            raise ModelUnavailable("no checkpoint at /nowhere")

        h.ne.model_call = unavailable
        s, _ = await h.ne.request(h.doc, h.doc.version)
        assert s.edit.source == "rule" and "no checkpoint" in h.ne.model_error

    run(go())


def test_a_rules_proposal_never_waits_for_the_model_to_open():
    async def go():
        h = Harness()
        opened = asyncio.Event()

        async def never_ready():  # a worker still starting: opening it would take the rest of the test
            opened.set()
            await asyncio.Event().wait()

        h.ne.model_call = never_ready
        h.rename_width()
        s, why = await asyncio.wait_for(h.ne.request(h.doc, h.doc.version), 5)
        assert (s.edit.source, s.edit.text) == ("rule", "size") and why == "rule rename"
        assert not opened.is_set()

    run(go())


def test_a_suggestion_that_times_out_does_not_cancel_a_worker_still_starting():
    async def go():
        h = Harness(rewrite_rules=True, timeout_s=0.05)  # the model is needed on this rename
        opened = asyncio.Event()

        async def slow_start():
            await asyncio.sleep(0.3)  # longer than the suggestion may take
            opened.set()
            return ModelCall(h.backend)

        h.ne.model_call = slow_start
        h.rename_width()
        s, why = await h.ne.request(h.doc, h.doc.version)
        assert s is None and "failed" in why and not opened.is_set()
        await asyncio.wait_for(opened.wait(), 5)  # the opening went on and finished

    run(go())


def test_closing_a_document_drops_its_history_and_suggestion():
    async def go():
        h = Harness(model=False)
        h.rename_width()
        await h.ne.request(h.doc, h.doc.version)
        h.ne.close(URI)
        assert URI not in h.ne.histories and URI not in h.ne.current

    run(go())
