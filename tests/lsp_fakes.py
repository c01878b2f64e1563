"""Test doubles for the worker's scheduling tests: an engine whose steps the test lets through.

Only the scheduling and transport logic is under test with these; the real engine is exercised by
the end-to-end tests (tests/test_lsp_e2e.py) with a tiny random-weight checkpoint.
"""

from __future__ import annotations

import math
import threading

from waiting import SAFETY_S

from sdls_model.jobs import EditJob, JobResult, JobStats, TextEdit


class StepGate:
    """Decides when a fake engine takes its next denoising step: always (open, the default), never
    (closed), or `allow(n)` more steps. A test closes it to hold a job mid-run at a known step, so
    what happens "while the engine works" happens at that step and no other."""

    def __init__(self):
        self._cond = threading.Condition()
        self._permits = math.inf
        self._waiting = 0

    def close(self) -> None:
        with self._cond:
            self._permits = 0

    def open(self) -> None:
        with self._cond:
            self._permits = math.inf
            self._cond.notify_all()

    def allow(self, steps: int = 1) -> None:
        with self._cond:
            self._permits += steps
            self._cond.notify_all()

    def pass_through(self) -> None:
        """Called by the engine before each step; blocks while the gate is closed."""
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()
            try:
                if not self._cond.wait_for(lambda: self._permits > 0, SAFETY_S):
                    raise TimeoutError("the test never let the engine take its next step")
                self._permits -= 1
            finally:
                self._waiting -= 1

    def wait_held(self) -> None:
        """Return once the engine is waiting at the closed gate (it has taken every step allowed)."""
        with self._cond:
            held = self._cond.wait_for(lambda: self._waiting > 0 and self._permits == 0, SAFETY_S)
        assert held, "the engine never reached the step gate"


class SteppingEngine:
    """Each job takes `steps` denoising steps, each let through by `gate`, and checks its CancelToken
    between them (as the real engine does). `progress` holds the steps each job has taken so far."""

    def __init__(self, steps: int = 5, name: str = "stepping"):
        self.steps, self.name = steps, name
        self.gate = StepGate()
        self.batches: list[list[str]] = []  # the prefix/text of each job, per engine.run call
        self.progress: dict[str, int] = {}
        self.current: list = []  # the jobs of the engine.run in progress (or the last one)
        self.started = threading.Event()
        self.fail_next = False

    def describe(self) -> dict:
        return {"name": self.name, "block_size": 8}

    def steps_for(self, job) -> int:
        """Steps a job takes (tests may replace this to give jobs different lengths)."""
        return self.steps

    def idle_slots(self) -> int:
        return 8

    def run(self, jobs, between_steps=None):
        names = [getattr(j, "prefix", None) or getattr(j, "text", "") for j in jobs]
        self.batches.append(names)
        self.current = list(jobs)
        self.started.set()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("simulated engine bug")
        done = [0] * len(jobs)
        steps = [self.steps_for(job) for job in jobs]
        for _ in range(max(steps, default=0)):
            self.gate.pass_through()
            live = [i for i, j in enumerate(jobs) if done[i] < steps[i] and not (j.cancel and j.cancel.cancelled)]
            if not live:
                break
            for i in live:
                done[i] += 1
                self.progress[names[i]] = done[i]
            if between_steps is not None:
                between_steps()
        results = []
        for job, forwards in zip(jobs, done):
            cancelled = bool(job.cancel and job.cancel.cancelled)
            if isinstance(job, EditJob):
                new = job.text[job.start : job.end].upper()
                edits = [TextEdit(job.start, job.end, new)]
                results.append(JobResult(new, [], JobStats(forwards=forwards), cancelled, edits))
            else:
                text = "" if cancelled else f"<{job.prefix[-3:]}>"
                results.append(JobResult(text, [1, 2], JobStats(forwards=forwards, tokens_committed=2), cancelled))
        return results

    def doubt(self, text, start, end):
        return [(start, min(end, start + 1), 0.05)]


class ScriptedBackend:
    """A Backend whose model output is chosen by the test: `answer(job) -> text` for infills,
    `edits(job) -> [TextEdit]` for edit jobs (job-relative offsets). Records every job it ran."""

    def __init__(self, answer=None, edits=None, doubts=None):
        self.answer = answer or (lambda job: "")
        self.edits = edits or (lambda job: [])
        self.doubts = doubts or (lambda text, start, end: [])
        self.jobs: list = []
        self.lanes: list[str] = []

    async def run(self, job, lane="inline"):
        self.jobs.append(job)
        self.lanes.append(lane)
        if isinstance(job, EditJob):
            edits = list(self.edits(job))
            return JobResult("", [], JobStats(forwards=2), False, edits)
        text = self.answer(job)
        return JobResult(text, list(range(len(text) // 2)), JobStats(forwards=3, tokens_committed=len(text) // 2))

    async def doubt(self, text, start, end):
        return list(self.doubts(text, start, end))

    async def stats(self):
        return {"jobs": len(self.jobs)}

    async def close(self):
        pass
