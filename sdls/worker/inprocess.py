"""The engine inside the calling process, behind the same interface as WorkerClient.

Used by the one-shot commands (`sdls complete`, `sdls fix`), which should not leave a daemon behind,
by `sdls serve --in-process` (settings: worker.inProcess), by `sdls service` and by tests. It still
goes through the Scheduler, so lanes, batching and cancellation behave as in the worker, and it keeps
the worker's per-job memory budget: a job whose estimated need is over it is refused (JobRefused)
before the engine allocates anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sdls_model.job_memory import DEFAULT_BUDGET_MB, budget_problem
from sdls_model.jobs import JobResult

from .client import JobRefused, WorkerError, timed_out
from .scheduler import DoubtRequest, Scheduler
from .wire import Job, doubt_from_wire


class InProcessBackend:
    def __init__(
        self,
        engine: Any,
        max_batch: int = 8,
        timeout_s: float | None = None,
        memory_budget: int | None = None,
        budget_setting: str = "sdls worker --memory-budget-mb",
    ):
        self.timeout_s = timeout_s  # each job's deadline (None: none, for one-shot commands)
        self.memory_budget, self.budget_setting = memory_budget, budget_setting  # bytes one job may need
        self.scheduler = Scheduler(engine, max_batch=max_batch)
        self.scheduler.start()
        self.info = {"pid": None, "model": engine.describe()}

    @classmethod
    def from_dir(
        cls,
        model_dir: str | None,
        device: str = "cpu",
        max_context: int = 1024,
        dtype: str = "auto",
        timeout_s: float | None = None,
    ) -> InProcessBackend:
        import torch

        from sdls_model.engine import Engine

        from .worker_command import default_threads

        torch.set_num_threads(default_threads())
        engine = Engine.from_dir(model_dir, device=device, dtype=dtype, max_context=max_context)
        return cls(engine, timeout_s=timeout_s, memory_budget=int(DEFAULT_BUDGET_MB * 1024 * 1024))

    def refusal(self, job: Any) -> str | None:
        """Why `job` is over this backend's memory budget (None: it fits, or there is no budget)."""
        need = getattr(self.scheduler.engine, "memory_need", None)
        if self.memory_budget is None or need is None or isinstance(job, DoubtRequest):
            return None
        return budget_problem(need(job), self.memory_budget, self.budget_setting)

    async def _submit(self, job: Any, lane: str) -> Any:
        if problem := self.refusal(job):
            raise JobRefused(problem)
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def done(result: Any, error: str | None) -> None:
            def settle() -> None:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(WorkerError(error))
                else:
                    future.set_result(result)

            loop.call_soon_threadsafe(settle)

        ticket = self.scheduler.submit(job, lane, done)
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except asyncio.TimeoutError:
            self.scheduler.cancel(ticket)
            raise timed_out(self.timeout_s or 0) from None
        except asyncio.CancelledError:
            self.scheduler.cancel(ticket)
            raise

    async def run(self, job: Job, lane: str = "inline") -> JobResult:
        return await self._submit(job, lane)

    async def doubt(self, text: str, start: int, end: int) -> list[tuple[int, int, float]]:
        return doubt_from_wire(await self._submit(DoubtRequest(text, start, end), "inline"))

    async def describe(self) -> dict:
        return self.scheduler.engine.describe()

    async def stats(self) -> dict:
        return self.scheduler.lane_stats()

    async def close(self) -> None:
        self.scheduler.stop()
