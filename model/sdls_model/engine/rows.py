"""A job being decoded (`Row`) and how its canvas is laid out: windowing, context, middle, blocks.

A row keeps its canvas twice: on the device (`seq`, what the forwards read and the commit rule
writes) and on the host (`tokens`, refreshed from the one read each step makes). Every decision
the host takes (which positions are open, where a block starts, what the answer is) reads the host
copy, so none of them waits for the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .. import sampling
from ..config import ModelConfig
from ..jobs import DecodeSettings, EditJob, InfillJob, JobStats
from ..layout import first_block_start, infill_context, padded_middle
from ..tokenizer import Tokenizer

DENOISE, SCORE = "denoise", "score"  # what a row's next forward is for


@dataclass
class Row:
    """One job being decoded: its canvas and where decoding stands."""

    job: InfillJob | EditJob
    kind: object  # the JobKind that drives it (kinds.py)
    settings: DecodeSettings
    policy: str  # cache policy: "exact" | "approx" | "none"
    blk: int
    seq: torch.Tensor  # (S,) on the device: context, middle (masks at first), in-place suffix
    tokens: list[int]  # the same canvas on the host, as of the last step's read
    ctx_len: int  # tokens before the middle
    mid_end: int  # end of the middle (exclusive)
    slot: int
    stop_kind: int = 0  # row of the engine's stop table: 0 end tokens, 1 end tokens and line breaks
    heal: str = ""  # infill: the prefix's trailing whitespace, left out of the row (healing.py)
    written: int = 0  # exact policy: the cache slot holds seq[:written]
    bs: int = 0  # current block start
    step: int = 0  # steps taken in the current block (this round, for edits)
    phase: str = DENOISE
    schedule: list[int] = field(default_factory=list)
    open: list[int] = field(default_factory=list)  # block offsets the next denoising step predicts
    stop_at: int | None = None  # position of the first end token of the middle
    done: bool = False
    cancelled: bool = False
    stats: JobStats = field(default_factory=JobStats)
    generator: torch.Generator | None = None
    # edit jobs
    region: list[int] = field(default_factory=list)  # the region's tokens as given
    marked: set[int] = field(default_factory=set)  # region indices re-masked whatever the model thinks
    round: int = 0
    before: torch.Tensor | None = None  # the block before this round's re-masking (device)
    spans: list[tuple[int, int, float]] = field(default_factory=list)  # doubt: what it found

    @property
    def be(self) -> int:
        return self.bs + self.blk

    @property
    def lo(self) -> int:
        """First offset of the current block that is middle (a sequence-aligned first block starts with context)."""
        return max(0, self.ctx_len - self.bs)

    def block_tokens(self) -> list[int]:
        return self.tokens[self.bs : self.be]


class RowBuilder:
    """Lays a job out on a canvas: window, context, middle padded to whole blocks, first block."""

    def __init__(self, cfg: ModelConfig, tokenizer: Tokenizer, device: torch.device, max_context: int):
        self.cfg, self.tokenizer, self.device, self.max_context = cfg, tokenizer, device, max_context

    def block_size(self, settings: DecodeSettings) -> int:
        """A job may pick its block size, except where blocks are part of the model's attention as
        trained (sequence- or generation-aligned checkpoints): those keep the checkpoint's."""
        if self.cfg.block_align != "context" and self.cfg.attention == "block_causal":
            return self.cfg.block_size
        return settings.block_size or self.cfg.block_size

    def policy(self, settings: DecodeSettings) -> str:
        causal = self.cfg.attention == "block_causal"
        if settings.cache == "auto":
            return "exact" if causal else "approx"
        if settings.cache == "exact" and not causal:
            raise ValueError("cache 'exact' needs a block-causal model; this one is bidirectional (use 'approx')")
        if settings.cache == "approx" and causal:
            return "exact"  # a block-causal model's cache is exact: nothing to approximate
        return settings.cache

    def window(self, prefix: list[int], suffix: list[int]) -> tuple[list[int], list[int]]:
        """Fit prefix + suffix into the context budget: the suffix keeps its start (at most a
        quarter of the budget unless the prefix is short), the prefix keeps its end. The prefix is
        cut at a multiple of 64 tokens so its start stays put while the user types."""
        budget = self.max_context - 4
        if len(prefix) + len(suffix) <= budget:
            return prefix, suffix
        keep_suffix = min(len(suffix), max(budget // 4, budget - len(prefix)))
        keep_prefix = budget - keep_suffix
        cut = len(prefix) - keep_prefix
        cut = min(len(prefix), math.ceil(cut / 64) * 64) if cut > 0 else 0
        return prefix[cut:], suffix[:keep_suffix]

    def row(self, job, kind, policy: str, blk: int, prefix_text: str, suffix_text: str, middle, slot: int) -> Row:
        """A row for `job` in `slot`. middle: (tokens, fill) laid out and padded with `fill` to a
        block boundary, wherever the blocks start."""
        cfg = self.cfg
        prefix, suffix = self.window(self.tokenizer.encode(prefix_text), self.tokenizer.encode(suffix_text))
        context, tail = infill_context(cfg, prefix, suffix)
        tokens, fill = middle
        middle_tokens = padded_middle(cfg, len(context), tokens, blk, fill)
        canvas = context + middle_tokens + tail
        seq = torch.tensor(canvas).to(self.device, non_blocking=True)
        ctx_len = len(context)
        row = Row(job, kind, job.settings, policy, blk, seq, canvas, ctx_len, ctx_len + len(middle_tokens), slot)
        row.bs = first_block_start(cfg, ctx_len, blk)
        row.stats.context_tokens = len(context) + len(tail)
        if job.settings.temperature > 0:
            row.generator = torch.Generator(device=self.device).manual_seed(job.settings.seed)
        return row

    def start_block(self, row: Row) -> None:
        """Reset the per-block state: open offsets and the fixed rule's schedule, from the host canvas."""
        row.step = 0
        row.open = self.open_offsets(row)
        masks = row.block_tokens().count(self.cfg.mask_id)  # the whole block, sub-blocks too
        per_step = row.settings.tokens_per_step
        row.schedule = sampling.transfer_schedule(masks, max(1, math.ceil(masks / per_step)))

    def open_offsets(self, row: Row) -> list[int]:
        """Block offsets of the row's current block that are still masked, in order; with sub-blocks
        (Fast-dLLM v2) only those of the first sub-block that has any."""
        mask = self.cfg.mask_id
        open_ = [j for j, t in enumerate(row.block_tokens()) if t == mask]
        sub = self.cfg.sub_block_size
        if sub and open_:
            open_ = [j for j in open_ if j // sub == open_[0] // sub]
        return open_
