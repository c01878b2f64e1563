"""Side by side: the same engine decodes the same tasks under several settings in one run.

Decoding is timed per call (the engine is warm: one untimed warm-up job first); every completion is
then executed in the sandbox. Identical programs run once (settings often agree on a middle).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sdls_model.engine import DecodeSettings, EditJob, Engine, InfillJob, JobResult

from .metrics import Record, Summary, goal_verdict, pass_by_suite, summarise
from .sandbox import Limits, isolation, run_programs
from .suites import Task

DEFAULT_THRESHOLDS = (0.9, 0.8, 0.7, 0.5, 0.3)


@dataclass(frozen=True)
class RunConfig:
    name: str
    settings: DecodeSettings


def standard_configs(
    thresholds=DEFAULT_THRESHOLDS, reference: bool = True, confidence: str = "prob", ends_anywhere: bool = False
) -> list[RunConfig]:
    """The reference rule, one token per step with the block cache, then threshold decoding; with
    `ends_anywhere` each threshold row has a twin whose end tokens may commit ahead of open masks."""
    configs = []
    if reference:
        configs.append(RunConfig("reference", DecodeSettings(rule="fixed", tokens_per_step=1, cache="none")))
    configs.append(RunConfig("sequential", DecodeSettings(rule="fixed", tokens_per_step=1, cache="auto")))
    for t in thresholds:
        settings = DecodeSettings(rule="threshold", threshold=t, confidence=confidence, cache="auto")
        configs.append(RunConfig(f"threshold {t:g}", settings))
        if ends_anywhere:
            configs.append(RunConfig(f"threshold {t:g}, ends anywhere", replace(settings, ends_in_order=False)))
    return configs


def make_job(task: Task, settings: DecodeSettings, max_new_tokens: int | None = None) -> InfillJob | EditJob:
    """An infill job for a hidden middle; for repair, an EditJob over the buggy body: the fix-up path
    with the editor's defaults (edit_threshold 0.1, 4 rounds) and no marked span, since nothing tells
    the model where the bug is."""
    if task.is_repair:
        text = task.prefix + task.given + task.suffix
        start = len(task.prefix)
        return EditJob(text=text, start=start, end=start + len(task.given), settings=settings)
    return InfillJob(
        prefix=task.prefix, suffix=task.suffix, max_new_tokens=max_new_tokens or task.max_new_tokens, settings=settings
    )


@dataclass
class Decoded:
    middle: str
    forwards: int
    tokens: int
    latency_ms: float
    error: str = ""


def decode(
    engine: Engine,
    tasks: list[Task],
    config: RunConfig,
    batch: int = 1,
    max_new_tokens: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Decoded], float]:
    """Decode every task under one setting: (per task, total wall seconds)."""
    out: list[Decoded] = []
    total = 0.0
    for lo in range(0, len(tasks), batch):
        chunk = tasks[lo : lo + batch]
        jobs = [make_job(t, config.settings, max_new_tokens) for t in chunk]
        started = time.perf_counter()
        try:
            results: list[JobResult | None] = engine.run(jobs)
            errors = [""] * len(chunk)
        except (ValueError, RuntimeError):  # e.g. a region longer than the engine revises at once:
            results, errors = _one_by_one(engine, jobs)  # keep the other jobs, record the failing one
        wall_ms = (time.perf_counter() - started) * 1000
        total += wall_ms / 1000
        for result, error in zip(results, errors):
            if result is None:
                out.append(Decoded("", 0, 0, wall_ms, error))
            else:
                out.append(Decoded(result.text, result.stats.forwards, result.stats.tokens_committed, wall_ms))
        every = max(batch, len(tasks) // 10)
        if progress and len(out) % every < len(chunk) and len(out) < len(tasks):
            progress(f"{config.name}: {len(out)}/{len(tasks)}")
    return out, total


def _one_by_one(engine: Engine, jobs: list) -> tuple[list[JobResult | None], list[str]]:
    results, errors = [], []
    for job in jobs:
        try:
            results.append(engine.run([job])[0])
            errors.append("")
        except (ValueError, RuntimeError) as exc:
            results.append(None)
            errors.append(f"{type(exc).__name__}: {exc}")
    return results, errors


@dataclass
class Report:
    suite: str
    model: dict
    tasks: list[str]
    configs: list[Summary]
    records: list[Record]
    checks: dict
    goal: dict
    isolation: dict
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "suite": self.suite,
            "model": self.model,
            "n_tasks": len(self.tasks),
            "tasks": self.tasks,
            "isolation": self.isolation,
            "run": self.settings,
            "checks": self.checks,
            "goal": self.goal,
            "configs": [s.as_dict() for s in self.configs],
            "pass_by_suite": {
                c: {s: {"passed": p, "tasks": n} for s, (p, n) in per.items()}
                for c, per in pass_by_suite(self.records).items()
            },
            "records": [r.as_dict() for r in self.records],
        }


def evaluate(
    engine: Engine,
    tasks: list[Task],
    configs: list[RunConfig],
    suite: str = "",
    batch: int = 1,
    limits: Limits | None = None,
    workers: int | None = None,
    max_new_tokens: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    if not tasks:
        raise ValueError("no tasks to evaluate")
    limits = limits or Limits()
    say = progress or (lambda _msg: None)
    warm = tasks[0]  # warm-up, untimed: a short infill under the cheapest setting
    engine.run([InfillJob(prefix=warm.prefix, suffix=warm.suffix, max_new_tokens=8, settings=configs[-1].settings)])
    decoded: dict[str, tuple[list[Decoded], float]] = {}
    for config in configs:
        decoded[config.name] = decode(engine, tasks, config, batch, max_new_tokens, progress)
        say(f"{config.name}: decoded {len(tasks)} tasks in {decoded[config.name][1]:.1f} s")

    # Every program once: the candidates, the canonical middles (the harness's own check), and the floors:
    # for repair the unrepaired bugs (a fix-up that changes nothing), for infill an empty middle.
    programs = {t.task_id: t.program(t.middle) for t in tasks}
    candidates = {
        (c.name, t.task_id): t.program(d.middle)
        for c in configs
        for t, d in zip(tasks, decoded[c.name][0])
        if not d.error
    }
    unrepaired = {t.task_id: t.program(t.given) for t in tasks if t.is_repair}
    empty = {t.task_id: t.program("") for t in tasks if not t.is_repair}  # what writing nothing scores
    unique = list(dict.fromkeys([*programs.values(), *candidates.values(), *unrepaired.values(), *empty.values()]))
    say(f"executing {len(unique)} distinct programs in the sandbox")
    outcomes = dict(zip(unique, run_programs(unique, limits, workers)))

    records = []
    for config in configs:
        for task, d in zip(tasks, decoded[config.name][0]):
            outcome = outcomes.get(candidates.get((config.name, task.task_id), ""))
            status, detail = (outcome.status, outcome.detail) if outcome else ("error", d.error)
            records.append(
                Record(config.name, task.task_id, d.middle, status, detail, d.forwards, d.tokens, d.latency_ms)
            )
    summaries = [
        summarise(c.name, c.settings, [r for r in records if r.config == c.name], decoded[c.name][1]) for c in configs
    ]
    canonical = [outcomes[programs[t.task_id]] for t in tasks]
    checks = {
        "canonical_passed": sum(o.passed for o in canonical),
        "canonical_total": len(canonical),
        "canonical_failures": {t.task_id: f"{o.status}: {o.detail}" for t, o in zip(tasks, canonical) if not o.passed},
        "unrepaired_passed": sum(outcomes[p].passed for p in unrepaired.values()),
        "unrepaired_total": len(unrepaired),
        "empty_passed": sum(outcomes[p].passed for p in empty.values()),
        "empty_total": len(empty),
    }
    return Report(
        suite=suite,
        model=engine.describe(),
        tasks=[t.task_id for t in tasks],
        configs=summaries,
        records=records,
        checks=checks,
        goal=goal_verdict(summaries),
        isolation=isolation(),
        settings={
            "batch": batch,
            "time_limit_s": limits.seconds,
            "memory_mb": limits.memory_mb,
            "max_new_tokens": max_new_tokens,
            "python": sys.version.split()[0],
        },
    )
