"""What the engine is asked to do and what it returns: plain data, no torch."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from .job_limits import range_problems

RULES = ("threshold", "fixed")
CACHE_POLICIES = ("auto", "exact", "approx", "none")
CONFIDENCE_KINDS = ("prob", "margin", "entropy")  # as sdls_model.sampling (which needs torch) names them


@dataclass(frozen=True)
class DecodeSettings:
    rule: str = "threshold"  # "threshold": commit every mask with confidence >= threshold (>= 1 per step)
    # "fixed": commit tokens_per_step per step (LLaDA's reference rule)
    threshold: float | None = None  # None: the checkpoint's own (ModelConfig.threshold, families.py)
    confidence: str = "prob"  # "prob" | "margin" | "entropy" (see sampling.confidence)
    tokens_per_step: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    block_size: int | None = None  # None: the checkpoint's own block size
    ends_in_order: bool = True  # an infill's end token commits only once every position before it is
    # decided (sampling.hold_back_ends); False: wherever the rule picks it, as LLaDA's and Fast-dLLM's rules do
    cache: str = "auto"  # "exact" (block-causal), "approx" (bidirectional, refreshed per block),
    # "none" (full recompute every step: the reference), "auto" picks per model

    def __post_init__(self) -> None:
        problems = []
        if self.rule not in RULES:
            problems.append(f"rule {self.rule!r} is not one of {RULES}")
        if self.cache not in CACHE_POLICIES:
            problems.append(f"cache {self.cache!r} is not one of {CACHE_POLICIES}")
        if self.confidence not in CONFIDENCE_KINDS:
            problems.append(f"confidence {self.confidence!r} is not one of {CONFIDENCE_KINDS}")
        if not isinstance(self.ends_in_order, bool):
            problems.append(f"ends_in_order {self.ends_in_order!r} is not true or false")
        problems += range_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ValueError("invalid DecodeSettings: " + "; ".join(problems))


class CancelToken:
    """Set from any thread; the engine checks it between denoising steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class InfillJob:
    prefix: str
    suffix: str = ""
    max_new_tokens: int = 64
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    session: str | None = None  # key of a document whose encoded context the engine keeps warm
    cancel: CancelToken | None = None
    single_line: bool = False  # the middle also ends at its first line break (ghost text for one line)
    on_block: Callable[[str], None] | None = None  # streaming: see Engine._block_committed


@dataclass
class EditJob:
    text: str
    start: int  # region to revise, character offsets into text
    end: int
    marked: list[tuple[int, int]] = field(default_factory=list)  # spans re-masked whatever the model thinks
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    edit_threshold: float = 0.1  # re-mask tokens whose probability under the model is below this
    max_rounds: int = 4
    session: str | None = None
    cancel: CancelToken | None = None
    on_block: Callable[[str], None] | None = None  # streaming: see Engine._block_committed


@dataclass
class JobStats:
    forwards: int = 0  # forward passes this job took part in
    tokens_committed: int = 0  # tokens of the answer (plus the end token that closed it)
    ms: float = 0.0
    context_tokens: int = 0
    reused_tokens: int = 0  # context tokens served from a warm cache
    encoded_tokens: int = 0  # context tokens encoded by this job
    rounds: int = 0  # edit jobs: re-mask rounds

    @property
    def tokens_per_forward(self) -> float:
        return self.tokens_committed / self.forwards if self.forwards else 0.0


@dataclass(frozen=True)
class TextEdit:
    start: int  # character offsets into the job's text
    end: int
    new_text: str


@dataclass
class JobResult:
    text: str
    tokens: list[int]
    stats: JobStats
    cancelled: bool = False
    edits: list[TextEdit] = field(default_factory=list)


def minimal_edits(old: str, new: str, offset: int = 0) -> list[TextEdit]:
    """The smallest list of replacements (character level) that turns `old` into `new`,
    with offsets shifted by `offset` (the region's start in the document)."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [
        TextEdit(offset + i1, offset + i2, new[j1:j2])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]
