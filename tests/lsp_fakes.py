"""Test doubles for the worker's scheduling tests: an engine whose steps take a known time.

Only the scheduling and transport logic is under test with these; the real engine is exercised by
the end-to-end tests (tests/test_lsp_e2e.py) with a tiny random-weight checkpoint.
"""

from __future__ import annotations

import threading
import time

from sdls_model.jobs import EditJob, JobResult, JobStats, TextEdit


class SteppingEngine:
    """Each job takes `steps` denoising steps of `step_s` seconds and checks its CancelToken between them."""

    def __init__(self, steps: int = 5, step_s: float = 0.01, name: str = "stepping"):
        self.steps, self.step_s, self.name = steps, step_s, name
        self.batches: list[list[str]] = []  # the prefix/text of each job, per engine.run call
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
        self.batches.append([getattr(j, "prefix", None) or getattr(j, "text", "") for j in jobs])
        self.started.set()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("simulated engine bug")
        done = [0] * len(jobs)
        steps = [self.steps_for(job) for job in jobs]
        for _ in range(max(steps, default=0)):
            live = [i for i, j in enumerate(jobs) if done[i] < steps[i] and not (j.cancel and j.cancel.cancelled)]
            if not live:
                break
            time.sleep(self.step_s)
            for i in live:
                done[i] += 1
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

    def __init__(self, answer=None, edits=None, doubts=None, delay_s: float = 0.0):
        self.answer = answer or (lambda job: "")
        self.edits = edits or (lambda job: [])
        self.doubts = doubts or (lambda text, start, end: [])
        self.delay_s = delay_s
        self.jobs: list = []
        self.lanes: list[str] = []

    async def run(self, job, lane="inline"):
        import asyncio

        self.jobs.append(job)
        self.lanes.append(lane)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
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
