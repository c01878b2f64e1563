"""One thread owns the engine; jobs wait in two priority lanes and run in batches.

Inline completions (the user is waiting on every keystroke) always go before rewrites, and do not
wait for a running rewrite either: between two of its denoising steps the rewrite lets the waiting
inline jobs run (on other cache slots, so neither changes the other's tokens). Jobs of one lane
that are waiting together run as one `engine.run` call, which batches them into shared forward
passes. A cancelled job that has not started is answered at once; a running one gets its
CancelToken set, which the engine checks between denoising steps. A new engine (hot reload) is
swapped in between batches, so no job ever sees two models.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sdls_model.jobs import CancelToken, JobResult, JobStats

from .protocol import LANES
from .wire import doubt_to_wire

log = logging.getLogger(__name__)


@dataclass
class DoubtRequest:
    """Which spans of text[start:end] the model doubts (for hover fix-ups)."""

    text: str
    start: int
    end: int


@dataclass
class Ticket:
    job: Any  # InfillJob | EditJob | DoubtRequest
    lane: str
    done: Callable[[Any, str | None], None]  # (result, error message); called once, on the engine thread
    cancel: CancelToken = field(default_factory=CancelToken)
    started: bool = False
    finished: bool = False


@dataclass
class LaneStats:
    jobs: int = 0
    cancelled: int = 0
    failed: int = 0
    forwards: int = 0
    forwards_wasted: int = 0  # forwards spent on jobs that were then cancelled
    batches: int = 0
    batched_jobs: int = 0  # jobs that shared an engine.run with at least one other
    preempted_rewrites: int = 0  # inline batches run between the steps of a running rewrite


def cancelled_result() -> JobResult:
    return JobResult(text="", tokens=[], stats=JobStats(), cancelled=True)


class Scheduler:
    def __init__(self, engine: Any, max_batch: int = 8, batch_window_s: dict[str, float] | None = None):
        self.engine = engine
        self.max_batch = max_batch
        # Jobs sent together (one wave of stubs) arrive a few frames apart: a rewrite waits this long
        # after the first job before starting, so they share forwards. Inline jobs never wait: they
        # batch when they queue behind a running batch, which is exactly when waiting would not help.
        self.batch_window_s = {"inline": 0.0, "rewrite": 0.02, **(batch_window_s or {})}
        self.stats = {lane: LaneStats() for lane in LANES}
        self._lanes: dict[str, deque[Ticket]] = {lane: deque() for lane in LANES}
        self._cond = threading.Condition()
        self._next_engine: Any = None
        self._stopping = False
        self.running = 0  # jobs in the batch on the engine now (for stats and tests)
        self._thread = threading.Thread(target=self._loop, name="sdls-engine", daemon=True)

    # -- called from any thread ---------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            pending = [t for lane in self._lanes.values() for t in lane]
            for lane in self._lanes.values():
                lane.clear()
            self._cond.notify_all()
        for ticket in pending:
            self._finish(ticket, None, "the worker is shutting down")
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, job: Any, lane: str, done: Callable[[Any, str | None], None]) -> Ticket:
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}; lanes are {LANES}")
        ticket = Ticket(job=job, lane=lane, done=done)
        if hasattr(job, "cancel"):
            job.cancel = ticket.cancel
        with self._cond:
            if self._stopping:
                raise RuntimeError("the worker is shutting down")
            self._lanes[lane].append(ticket)
            self._cond.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        ticket.cancel.cancel()
        with self._cond:
            queued = not ticket.started and ticket in self._lanes[ticket.lane]
            if queued:
                self._lanes[ticket.lane].remove(ticket)
        if queued:
            self.stats[ticket.lane].cancelled += 1
            self._finish(
                ticket,
                cancelled_result() if not isinstance(ticket.job, DoubtRequest) else None,
                None if not isinstance(ticket.job, DoubtRequest) else "cancelled",
            )

    def swap_engine(self, engine: Any) -> None:
        """Serve `engine` from the next batch on."""
        with self._cond:
            self._next_engine = engine
            self._cond.notify()

    def queued(self) -> dict[str, int]:
        with self._cond:
            return {lane: len(q) for lane, q in self._lanes.items()}

    def lane_stats(self) -> dict:
        """Per-lane counters, queue lengths and jobs on the engine now, as plain data (the `stats` answer),
        and the engine's step counters: forward paths, host reads, CUDA graph state or why it is off."""
        decode_stats = getattr(self.engine, "decode_stats", None)
        return {
            "lanes": {lane: dataclasses.asdict(s) for lane, s in self.stats.items()},
            "queued": self.queued(),
            "running": self.running,
            **({"decode": decode_stats()} if decode_stats is not None else {}),
        }

    # -- the engine thread ----------------------------------------------------------------------
    def _take_batch(self) -> list[Ticket] | None:
        with self._cond:
            while not self._stopping and not any(self._lanes.values()):
                if self._next_engine is not None:
                    break
                self._cond.wait()
            window = 0.0 if self._lanes["inline"] else self.batch_window_s["rewrite"] if self._lanes["rewrite"] else 0.0
        if window:
            time.sleep(window)
        with self._cond:
            if self._stopping:
                return None
            if self._next_engine is not None:
                self.engine, self._next_engine = self._next_engine, None
            for lane in LANES:  # lane order is priority order
                if self._lanes[lane]:
                    return self._pop_batch(self._lanes[lane], self.max_batch)
            return []

    @staticmethod
    def _pop_batch(queue: deque[Ticket], limit: int) -> list[Ticket]:
        """The next batch of a lane (caller holds the lock): a doubt request alone, or up to `limit` jobs."""
        if isinstance(queue[0].job, DoubtRequest):
            batch = [queue.popleft()]
        else:
            batch = []
            while queue and len(batch) < limit and not isinstance(queue[0].job, DoubtRequest):
                batch.append(queue.popleft())
        for ticket in batch:
            ticket.started = True
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            if batch:
                self._run(batch)

    def _run(self, batch: list[Ticket]) -> None:
        self.running += len(batch)  # counts an inline batch run inside a rewrite's step too
        try:
            self._run_batch(batch)
        finally:
            self.running -= len(batch)

    def _run_batch(self, batch: list[Ticket]) -> None:
        stats = self.stats[batch[0].lane]
        try:
            if isinstance(batch[0].job, DoubtRequest):
                req = batch[0].job
                spans = self.engine.doubt(req.text, req.start, req.end)
                self._finish(batch[0], doubt_to_wire(spans), None)
                return
            started = time.perf_counter()
            jobs = [t.job for t in batch]
            if batch[0].lane == "inline":
                results = self.engine.run(jobs)
            else:
                results = self.engine.run(jobs, between_steps=self._inline_meanwhile)
            log.debug(
                "batch of %d %s jobs in %.1f ms", len(batch), batch[0].lane, (time.perf_counter() - started) * 1e3
            )
        except Exception as exc:  # a bug or a bad job: answer every ticket, keep the thread alive
            log.exception("engine failed on a batch of %d jobs", len(batch))
            stats.failed += len(batch)
            for ticket in batch:
                self._finish(ticket, None, f"the engine failed: {type(exc).__name__}: {exc}")
            return
        stats.batches += 1
        if len(batch) > 1:
            stats.batched_jobs += len(batch)
        for ticket, result in zip(batch, results):
            stats.jobs += 1
            stats.forwards += result.stats.forwards
            if result.cancelled or ticket.cancel.cancelled:
                stats.cancelled += 1
                stats.forwards_wasted += result.stats.forwards
                result.cancelled = True
            self._finish(ticket, result, None)

    def _inline_meanwhile(self) -> None:
        """Called by the engine between a rewrite's steps: run the inline jobs waiting now, if the
        engine has cache slots for them beside the rewrite's."""
        with self._cond:
            queue = self._lanes["inline"]
            room = min(self.max_batch, self.engine.idle_slots())
            if not queue or room < 1:
                return
            batch = self._pop_batch(queue, room)
        self.stats["inline"].preempted_rewrites += 1
        self._run(batch)

    def _finish(self, ticket: Ticket, result: Any, error: str | None) -> None:
        if ticket.finished:
            return
        ticket.finished = True
        try:
            ticket.done(result, error)
        except Exception:
            log.exception("delivering a result failed")
