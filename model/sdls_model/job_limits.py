"""The documented range of every numeric job field: one table, checked wherever a job or a setting
that becomes one crosses a boundary (DecodeSettings itself, the worker's wire, the server's settings).

A value outside its range is refused with a message naming the field and the range; it never
reaches the engine, where `temperature: inf` decodes forever and `block_size: 100000` allocates
gigabytes before anything stops it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    integer: bool = False
    low_open: bool = False  # (low, high] rather than [low, high]

    def describe(self) -> str:
        kind, show = ("an integer", lambda x: str(int(x))) if self.integer else ("a finite number", lambda x: f"{x:g}")
        return f"{kind} in {'(' if self.low_open else '['}{show(self.low)}, {show(self.high)}]"

    def problem(self, name: str, value: Any) -> str | None:
        """Why `value` does not fit (None: it does). Booleans are not numbers here."""
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (self.integer and not isinstance(value, int)) or not math.isfinite(value):
            return f"{name} must be {self.describe()}, got {value!r}"
        if value < self.low or value > self.high or (self.low_open and value == self.low):
            return f"{name} must be {self.describe()}, got {value!r}"
        return None


JOB_RANGES: dict[str, Range] = {
    # DecodeSettings
    "threshold": Range(0.0, 1.0, low_open=True),  # a confidence: commit masks at least this sure
    "tokens_per_step": Range(1, 256, integer=True),
    "temperature": Range(0.0, 100.0),  # 0: greedy; the HTTP service takes the same range
    "top_p": Range(0.0, 1.0, low_open=True),
    "seed": Range(0, 2**63 - 1, integer=True),
    "block_size": Range(1, 512, integer=True),  # checkpoints use 4..32; a block is one forward's queries
    # InfillJob / EditJob
    "max_new_tokens": Range(1, 4096, integer=True),  # the engine also caps it at its own max_new_tokens
    "edit_threshold": Range(0.0, 1.0),  # a probability
    "max_rounds": Range(0, 32, integer=True),  # 0: one pass, no re-masking (what `doubt` runs)
}


def range_problems(values: dict[str, Any]) -> list[str]:
    """Problems of the `values` (field name -> value) that JOB_RANGES covers; None means "the default"."""
    return [
        p
        for name, value in values.items()
        if name in JOB_RANGES and value is not None and (p := JOB_RANGES[name].problem(name, value))
    ]
