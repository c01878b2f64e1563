"""Figures of one decoding setting over a suite, and the verdict on the project's speed goal. Pure."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# The goal the harness judges (issue 6): >= 5 tokens committed per forward with pass@1 within 1 point of
# one token per step (the "sequential" setting), on the same tasks.
GOAL_TOKENS_PER_FORWARD = 5.0
GOAL_MAX_DROP_POINTS = 1.0
BASELINE = "sequential"


@dataclass(frozen=True)
class Record:
    config: str
    task_id: str
    middle: str  # what the model produced for the hidden / revised middle
    status: str  # sandbox status ("passed", "failed", ...) or "error" when decoding raised
    detail: str
    forwards: int
    tokens: int  # tokens committed (the engine's count, end token included)
    latency_ms: float  # wall time of the engine call that served this task

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    name: str
    settings: dict
    tasks: int
    passed: int
    errors: int
    forwards: int
    tokens: int
    seconds: float  # decode wall time of the whole setting
    latency_p50_ms: float
    latency_p95_ms: float

    @property
    def pass_at_1(self) -> float:
        """Percent of tasks whose single greedy sample passes (temperature 0: pass@1 = pass rate)."""
        return 100.0 * self.passed / self.tasks if self.tasks else 0.0

    @property
    def tokens_per_forward(self) -> float:
        return self.tokens / self.forwards if self.forwards else 0.0

    @property
    def forwards_per_s(self) -> float:
        return self.forwards / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "pass_at_1": round(self.pass_at_1, 2),
            "tokens_per_forward": round(self.tokens_per_forward, 3),
            "forwards_per_s": round(self.forwards_per_s, 2),
            "tokens_per_s": round(self.tokens_per_s, 2),
        }


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def summarise(name: str, settings, records: list[Record], seconds: float) -> Summary:
    latencies = [r.latency_ms for r in records]
    return Summary(
        name=name,
        settings=settings_dict(settings),
        tasks=len(records),
        passed=sum(r.passed for r in records),
        errors=sum(r.status == "error" for r in records),
        forwards=sum(r.forwards for r in records),
        tokens=sum(r.tokens for r in records),
        seconds=seconds,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
    )


def settings_dict(settings) -> dict:
    if isinstance(settings, dict):
        return settings
    keys = ("rule", "threshold", "confidence", "tokens_per_step", "cache", "temperature", "block_size")
    out = {k: getattr(settings, k) for k in keys}
    if out["rule"] != "threshold":
        del out["threshold"], out["confidence"]
    return out


def pass_by_suite(records: list[Record]) -> dict[str, dict[str, tuple[int, int]]]:
    """{config: {suite: (passed, tasks)}}; the suite is the first part of the task id."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for r in records:
        suite = r.task_id.split("/", 1)[0]
        passed, total = out.setdefault(r.config, {}).get(suite, (0, 0))
        out[r.config][suite] = (passed + r.passed, total + 1)
    return out


def goal_verdict(summaries: list[Summary]) -> dict:
    """Which settings reach >= 5 tokens/forward within 1 pass@1 point of one token per step."""
    base = next((s for s in summaries if s.name == BASELINE), None)
    if base is None:
        return {"judged": False, "reason": f"no {BASELINE!r} setting in this run"}
    meeting = [
        s.name
        for s in summaries
        if s.name != BASELINE
        and s.tokens_per_forward >= GOAL_TOKENS_PER_FORWARD
        and s.pass_at_1 >= base.pass_at_1 - GOAL_MAX_DROP_POINTS
    ]
    return {
        "judged": True,
        "met": bool(meeting),
        "settings_meeting": meeting,
        "baseline": BASELINE,
        "baseline_pass_at_1": round(base.pass_at_1, 2),
        "min_tokens_per_forward": GOAL_TOKENS_PER_FORWARD,
        "max_drop_points": GOAL_MAX_DROP_POINTS,
        "tasks": base.tasks,
    }
