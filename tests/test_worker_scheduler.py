"""Scheduler: priority lanes, batching, cancellation, engine failures (with a stepping test engine)."""

from __future__ import annotations

import threading
import time

import pytest
from lsp_fakes import SteppingEngine

from sdls.worker.scheduler import DoubtRequest, Scheduler
from sdls_model.jobs import EditJob, InfillJob


class Collector:
    def __init__(self):
        self.results = {}
        self.order = []
        self.event = threading.Event()

    def callback(self, name):
        def done(result, error):
            self.results[name] = (result, error)
            self.order.append(name)
            self.event.set()

        return done

    def wait_for(self, *names, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not all(n in self.results for n in names):
            assert time.monotonic() < deadline, f"timed out waiting for {names}; got {list(self.results)}"
            time.sleep(0.005)


@pytest.fixture
def sched():
    engine = SteppingEngine(steps=4, step_s=0.02)
    scheduler = Scheduler(engine, max_batch=4)
    yield scheduler
    scheduler.stop()


def block_engine(sched, col):
    """Occupy the engine thread with one inline job (inline jobs do not make way for each other) so
    later submissions queue up together."""
    sched.submit(InfillJob(prefix="blocker"), "inline", col.callback("blocker"))
    assert sched.engine.started.wait(2)


def test_inline_lane_goes_before_rewrites_and_waiting_jobs_batch(sched):
    col = Collector()
    sched.start()
    block_engine(sched, col)
    sched.submit(InfillJob(prefix="rw1"), "rewrite", col.callback("rw1"))
    for i in range(3):
        sched.submit(InfillJob(prefix=f"in{i}"), "inline", col.callback(f"in{i}"))
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
    block_engine(sched, col)
    for i in range(6):
        sched.submit(InfillJob(prefix=f"j{i}"), "inline", col.callback(f"j{i}"))
    col.wait_for(*[f"j{i}" for i in range(6)])
    assert [len(b) for b in sched.engine.batches[1:]] == [4, 2]


def test_cancel_queued_job_answers_at_once_without_running_it(sched):
    col = Collector()
    sched.start()
    block_engine(sched, col)
    ticket = sched.submit(InfillJob(prefix="late"), "inline", col.callback("late"))
    sched.cancel(ticket)
    result, error = col.results["late"]  # answered synchronously by cancel()
    assert error is None and result.cancelled and result.text == ""
    col.wait_for("blocker")
    assert all("late" not in batch for batch in sched.engine.batches)


def test_cancel_running_job_stops_within_one_step():
    engine = SteppingEngine(steps=200, step_s=0.01)  # 2 s if nobody cancels
    sched = Scheduler(engine)
    col = Collector()
    sched.start()
    try:
        ticket = sched.submit(InfillJob(prefix="long"), "inline", col.callback("long"))
        assert engine.started.wait(2)
        time.sleep(0.05)
        t0 = time.monotonic()
        sched.cancel(ticket)
        col.wait_for("long", timeout=1.0)
        assert time.monotonic() - t0 < 0.1  # one 10 ms step, plus scheduling slack
        result, _ = col.results["long"]
        assert result.cancelled
        assert 0 < result.stats.forwards < 200
        assert sched.stats["inline"].forwards_wasted == result.stats.forwards
    finally:
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
    new = SteppingEngine(steps=1, step_s=0.0, name="new")
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


def test_jobs_arriving_together_at_an_idle_engine_share_one_run():
    engine = SteppingEngine(steps=1, step_s=0.0)
    sched = Scheduler(engine, batch_window_s={"rewrite": 0.05})
    col = Collector()
    sched.start()
    try:
        for i in range(3):
            sched.submit(InfillJob(prefix=f"w{i}"), "rewrite", col.callback(f"w{i}"))
            time.sleep(0.005)  # a few frames apart, as from one socket
        col.wait_for("w0", "w1", "w2")
        assert engine.batches == [["w0", "w1", "w2"]]
    finally:
        sched.stop()


def test_an_inline_job_runs_between_the_steps_of_a_running_rewrite():
    """A long rewrite (here 2 s) must not hold up ghost text: the inline job runs at the rewrite's
    next step boundary, and the rewrite then carries on to its own result."""
    engine = SteppingEngine(step_s=0.01)
    engine.steps_for = lambda job: 200 if isinstance(job, EditJob) else 3
    sched = Scheduler(engine)
    col = Collector()
    sched.start()
    try:
        sched.submit(EditJob("long rewrite", 0, 4), "rewrite", col.callback("rewrite"))
        assert engine.started.wait(2)
        sent = time.monotonic()
        sched.submit(InfillJob(prefix="quick"), "inline", col.callback("inline"))
        col.wait_for("inline")
        waited = time.monotonic() - sent
        assert "rewrite" not in col.results, "the inline job waited for the whole rewrite"
        assert waited < 1.0
        col.wait_for("rewrite", timeout=10)
        assert col.results["inline"][0].text == "<ick>"
        assert col.results["rewrite"][0].text == "LONG" and col.results["rewrite"][0].stats.forwards == 200
        assert sched.stats["inline"].preempted_rewrites == 1
    finally:
        sched.stop()
