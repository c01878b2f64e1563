"""One model the service serves: a warm engine behind the worker's scheduler (lanes, batching,
cancellation between steps, document sessions), plus the facts the HTTP answers report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdls.memory import rss_mb
from sdls.worker.inprocess import InProcessBackend


class ServedModel:
    def __init__(self, name: str, engine: Any, max_batch: int = 8, memory_budget: int | None = None):
        self.name = name
        self.engine = engine
        # The worker's Scheduler inside, and its budget: one request's block size must not take the
        # process (and every other client's model) down.
        self.backend = InProcessBackend(
            engine, max_batch=max_batch, memory_budget=memory_budget, budget_setting="sdls service --memory-budget-mb"
        )

    @classmethod
    def load(
        cls,
        name: str,
        path: str | Path | None,
        device: str = "cpu",
        dtype: str = "auto",
        max_context: int = 1024,
        max_batch: int = 8,
        memory_budget: int | None = None,
    ) -> ServedModel:
        from sdls_model.engine import Engine

        engine = Engine.from_dir(path, device=device, dtype=dtype, max_context=max_context, max_batch=max_batch)
        return cls(name, engine, max_batch=max_batch, memory_budget=memory_budget)

    @property
    def max_new_tokens(self) -> int:
        return self.engine.max_new_tokens

    @property
    def context_budget(self) -> int:
        """Tokens of prefix + suffix the engine keeps (it cuts longer prompts itself)."""
        return self.engine.max_context - 4

    def count_tokens(self, text: str) -> int:
        return len(self.engine.tokenizer.encode(text)) if text else 0

    def describe(self) -> dict:
        return {"id": self.name, **self.engine.describe()}

    def stats(self) -> dict:
        lanes = self.backend.scheduler.lane_stats()
        runs = sum(s["batches"] for s in lanes["lanes"].values())
        jobs = sum(s["jobs"] for s in lanes["lanes"].values())
        return {
            **lanes,
            "jobs_per_engine_call": round(jobs / runs, 3) if runs else 0.0,
            "rss_mb": rss_mb(),
            "peak_rss_mb": rss_mb("VmHWM"),
        }

    def close(self) -> None:
        self.backend.scheduler.stop()

    def __del__(self) -> None:  # Ray Serve unloads a multiplexed model by dropping it
        try:
            self.backend.scheduler.stop(timeout=1.0)
        except Exception:
            pass
