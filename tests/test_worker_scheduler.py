"""Scheduler: priority lanes, batching, cancellation, engine failures (with a stepping test engine)."""

from __future__ import annotations

import threading
import time

import pytest
from lsp_fakes import SteppingEngine
from waiting import SAFETY_S, eventually

from sdls.worker import scheduler as scheduler_module
from sdls.worker.scheduler import DoubtRequest, Scheduler
from sdls_model.jobs import EditJob, InfillJob


class Collector:
    def __init__(self):
        self.results = {}
        self.order = []
        self._cond = threading.Condition()

    def callback(self, name):
        def done(result, error):
            with self._cond:
                self.results[name] = (result, error)
                self.order.append(name)
                self._cond.notify_all()

        return done

    def wait_for(self, *names):
        with self._cond:
            arrived = self._cond.wait_for(lambda: all(n in self.results for n in names), SAFETY_S)
        assert arrived, f"no answer for {[n for n in names if n not in self.results]}; got {list(self.results)}"


class WindowClock:
    """Stands in for the scheduler's `time`: the batch-window wait lasts until the test releases it."""

    perf_counter = staticmethod(time.perf_counter)

    def __init__(self):
        self.windows: list[float] = []  # each wait the scheduler asked for, in seconds
        self.waiting = threading.Event()
        self.release = threading.Event()

    def sleep(self, seconds: float) -> None:
        self.windows.append(seconds)
        self.waiting.set()
        assert self.release.wait(SAFETY_S), "the test never closed the batch window"


@pytest.fixture
def sched():
    scheduler = Scheduler(SteppingEngine(steps=4), max_batch=4)
    yield scheduler
    scheduler.engine.gate.open()
    scheduler.stop()


def hold_engine(sched, col):
    """Occupy the engine thread with one inline job held at its first step (inline jobs do not make
    way for each other), so later submissions queue up together until the test opens the gate."""
    sched.engine.gate.close()
    sched.submit(InfillJob(prefix="blocker"), "inline", col.callback("blocker"))
    sched.engine.gate.wait_held()


def test_inline_lane_goes_before_rewrites_and_waiting_jobs_batch(sched):
    col = Collector()
    sched.start()
    hold_engine(sched, col)
    sched.submit(InfillJob(prefix="rw1"), "rewrite", col.callback("rw1"))
    for i in range(3):
        sched.submit(InfillJob(prefix=f"in{i}"), "inline", col.callback(f"in{i}"))
    assert sched.queued() == {"inline": 3, "rewrite": 1}
    sched.engine.gate.open()
    col.wait_for("blocker", "rw1", "in0", "in1", "in2")
    # The three inline jobs ran together in one engine.run, before the rewrite that was queued first.
    assert sched.engine.batches[1] == ["in0", "in1", "in2"]
    assert sched.engine.batches[2] == ["rw1"]
    assert col.order.index("in2") < col.order.index("rw1")
    assert sched.stats["inline"].batched_jobs == 3
    assert col.results["in1"][0].text == "<in1>"


def test_batch_size_is_capped(sched):
    col = Collector()
    sched.start()
    hold_engine(sched, col)
    for i in range(6):
        sched.submit(InfillJob(prefix=f"j{i}"), "inline", col.callback(f"j{i}"))
    sched.engine.gate.open()
    col.wait_for(*[f"j{i}" for i in range(6)])
    assert [len(b) for b in sched.engine.batches[1:]] == [4, 2]


def test_cancel_queued_job_answers_at_once_without_running_it(sched):
    col = Collector()
    sched.start()
    hold_engine(sched, col)
    ticket = sched.submit(InfillJob(prefix="late"), "inline", col.callback("late"))
    sched.cancel(ticket)
    result, error = col.results["late"]  # answered synchronously by cancel()
    assert error is None and result.cancelled and result.text == ""
    sched.engine.gate.open()
    col.wait_for("blocker")
    assert all("late" not in batch for batch in sched.engine.batches)


def test_cancel_running_job_stops_at_the_next_step():
    engine = SteppingEngine(steps=200)
    sched = Scheduler(engine)
    col = Collector()
    sched.start()
    engine.gate.close()
    try:
        ticket = sched.submit(InfillJob(prefix="long"), "inline", col.callback("long"))
        engine.gate.allow(3)
        engine.gate.wait_held()  # three steps done, the fourth not started
        sched.cancel(ticket)
        engine.gate.open()
        col.wait_for("long")
        result, _ = col.results["long"]
        assert result.cancelled
        assert result.stats.forwards == 3  # not one step after the cancel
        assert sched.stats["inline"].forwards_wasted == 3
    finally:
        engine.gate.open()
        sched.stop()


def test_engine_failure_answers_every_job_and_thread_survives(sched):
    col = Collector()
    sched.engine.fail_next = True
    sched.start()
    sched.submit(InfillJob(prefix="boom"), "inline", col.callback("boom"))
    col.wait_for("boom")
    assert "simulated engine bug" in col.results["boom"][1]
    sched.submit(InfillJob(prefix="after"), "inline", col.callback("after"))
    col.wait_for("after")
    assert col.results["after"][0].text == "<ter>"


def test_swap_engine_takes_effect_between_batches(sched):
    col = Collector()
    sched.start()
    new = SteppingEngine(steps=1, name="new")
    sched.swap_engine(new)
    sched.submit(EditJob(text="abc", start=0, end=3), "rewrite", col.callback("edit"))
    col.wait_for("edit")
    assert new.batches == [["abc"]]
    assert col.results["edit"][0].edits[0].new_text == "ABC"


def test_doubt_runs_on_the_engine_thread(sched):
    col = Collector()
    sched.start()
    sched.submit(DoubtRequest("x = 1", 0, 5), "inline", col.callback("d"))
    col.wait_for("d")
    assert col.results["d"] == ({"spans": [[0, 1, 0.05]]}, None)


def test_unknown_lane_is_rejected(sched):
    with pytest.raises(ValueError, match="unknown lane"):
        sched.submit(InfillJob(prefix="x"), "urgent", lambda r, e: None)


def test_jobs_arriving_within_the_batch_window_share_one_run(monkeypatch):
    clock = WindowClock()
    monkeypatch.setattr(scheduler_module, "time", clock)
    engine = SteppingEngine(steps=1)
    sched = Scheduler(engine, batch_window_s={"rewrite": 0.05})
    col = Collector()
    sched.start()
    try:
        sched.submit(InfillJob(prefix="w0"), "rewrite", col.callback("w0"))
        eventually(lambda: clock.waiting.is_set() or "w0" in col.results, "the batch window to open")
        assert clock.waiting.is_set(), "the scheduler ran the first rewrite without waiting for the rest"
        for i in (1, 2):  # the rest of the wave, a few frames later: inside the window
            sched.submit(InfillJob(prefix=f"w{i}"), "rewrite", col.callback(f"w{i}"))
        clock.release.set()
        col.wait_for("w0", "w1", "w2")
        assert engine.batches == [["w0", "w1", "w2"]]
        assert clock.windows == [0.05]
    finally:
        clock.release.set()
        sched.stop()


def test_an_inline_job_runs_between_the_steps_of_a_running_rewrite():
    """A long rewrite (here 200 steps) must not hold up ghost text: the inline job runs at the
    rewrite's next step boundary, and the rewrite then carries on to its own result."""
    engine = SteppingEngine()
    engine.steps_for = lambda job: 200 if isinstance(job, EditJob) else 3
    sched = Scheduler(engine)
    col = Collector()
    sched.start()
    engine.gate.close()
    try:
        sched.submit(EditJob("long rewrite", 0, 4), "rewrite", col.callback("rewrite"))
        engine.gate.allow(1)
        engine.gate.wait_held()  # the rewrite is running: one step done
        sched.submit(InfillJob(prefix="quick"), "inline", col.callback("inline"))
        engine.gate.allow(1 + 3)  # the rewrite's next step, then the inline job's three
        engine.gate.wait_held()
        assert "inline" in col.results, "the inline job did not run at the rewrite's step boundary"
        assert engine.progress["long rewrite"] == 2 and "rewrite" not in col.results
        engine.gate.open()
        col.wait_for("rewrite")
        assert col.results["inline"][0].text == "<ick>"
        assert col.results["rewrite"][0].text == "LONG" and col.results["rewrite"][0].stats.forwards == 200
        assert sched.stats["inline"].preempted_rewrites == 1
    finally:
        engine.gate.open()
        sched.stop()
