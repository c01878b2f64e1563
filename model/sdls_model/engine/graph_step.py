"""The product's fast step: a whole greedy threshold step on static buffers, replayed as a CUDA graph.

A block's steps after its first are a block over the cache with nothing pending to encode. When
every row of such a step decodes greedily under the threshold rule, the whole step — FastDecoder
forward, logits, fused confidence, the threshold rule, the end-token padding and the status the
host reads — runs on static buffers of a fixed shape: (rows, block, read_len bucket, confidence
kind). On CUDA each shape is captured once in a CUDA graph (fast_path.CapturedStep) and replayed;
if capture fails the same function runs uncaptured on the buffers (eager) and `stats()` says why.
On a CPU (tests, `Engine(..., graph=True)`) the buffers are used without capture: the same code.

The step commits exactly what the eager rule would: the open masks with confidence >= threshold,
and the most confident one at least (sampling.select_threshold), an infill's end tokens held back
while a mask is open before them (sampling.hold_back_ends), from the same logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .. import sampling
from ..config import ModelConfig
from ..fast_path import CapturedStep, FastDecoder, confidence_score, length_bucket
from ..jobs import InfillJob
from .batch import to_device
from .commit import FLAGS
from .rows import DENOISE, Row


@dataclass
class GraphStats:
    captured: int = 0  # shapes captured as CUDA graphs
    replays: int = 0  # steps served by a captured graph
    uncaptured: int = 0  # steps served on static buffers without a graph (CPU, or capture failed)
    fallback: str | None = None  # why capture failed (then every shape runs uncaptured)
    shapes: list[str] = field(default_factory=list)


class GraphSteps:
    def __init__(self, decoder: FastDecoder, cache, banned: torch.Tensor, stop_table: torch.Tensor, capture: bool):
        self.decoder, self.cache, self.banned, self.stop_table = decoder, cache, banned, stop_table
        self.cfg: ModelConfig = decoder.cfg
        self.device = banned.device
        self.capture = capture and self.device.type == "cuda"
        self.steps: dict[tuple, Callable] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.capture else None
        self.counters = GraphStats()

    def serves(self, rows: list[Row]) -> bool:
        """A step of greedy threshold denoising, every row a same-width block over its cache."""
        first = rows[0].settings
        return all(
            r.phase == DENOISE
            and r.policy == "exact"
            and r.written == r.bs
            and r.blk == rows[0].blk
            and r.settings.rule == "threshold"
            and r.settings.temperature == 0
            and r.settings.top_p >= 1.0
            and r.settings.confidence == first.confidence
            for r in rows
        )

    def stats(self) -> dict:
        c = self.counters
        return {
            "mode": "cuda graph" if self.capture and c.fallback is None else "static buffers, eager",
            "captured": c.captured,
            "replays": c.replays,
            "uncaptured": c.uncaptured,
            "fallback": c.fallback,
        }

    def __call__(self, rows: list[Row]) -> torch.Tensor:
        """Run the step, write each row's new block into its canvas; returns the (R, blk + FLAGS) status."""
        R, blk, dev = len(rows), rows[0].blk, self.device
        read_len = min(length_bucket(max(r.written for r in rows)), self.cache.max_len)
        kind = rows[0].settings.confidence
        inputs = (
            torch.stack([r.seq[r.bs : r.be] for r in rows]),  # tokens (R, blk)
            to_device([list(range(r.bs, r.be)) for r in rows], torch.long, dev),
            to_device([r.written for r in rows], torch.long, dev),  # cache lengths
            to_device([r.slot for r in rows], torch.long, dev),
            to_device([[j in set(r.open) for j in range(blk)] for r in rows], torch.bool, dev),
            to_device([self._threshold(r) for r in rows], torch.float64, dev),
            to_device([isinstance(r.job, InfillJob) for r in rows], torch.bool, dev),  # pads after an end
            to_device([isinstance(r.job, InfillJob) and r.settings.ends_in_order for r in rows], torch.bool, dev),
            to_device([r.lo for r in rows], torch.long, dev),
            to_device([r.stop_kind for r in rows], torch.long, dev),
        )
        step = self._step_for((R, blk, read_len, kind), inputs)
        new_blocks, status = step(*inputs)
        for b, row in enumerate(rows):
            row.seq[row.bs : row.be].copy_(new_blocks[b])
        return status

    def _threshold(self, row: Row) -> float:
        s = row.settings
        return s.threshold if s.threshold is not None else self.cfg.threshold

    def _step_for(self, key: tuple, inputs: tuple[torch.Tensor, ...]) -> Callable:
        step = self.steps.get(key)
        if step is not None:
            return step
        _, _, read_len, kind = key
        fn = self._make_step(read_len, kind)
        step = self._uncaptured(fn)
        if self.capture and self.counters.fallback is None:
            try:
                captured = CapturedStep(fn, inputs, pool=self.pool)
                step = self._replayed(captured)
                self.counters.captured += 1
            except Exception as error:
                self.counters.fallback = f"{type(error).__name__}: {error}"[:300]
                torch.cuda.synchronize()
        self.counters.shapes.append("x".join(map(str, key)))
        self.steps[key] = step
        return step

    def _replayed(self, captured: CapturedStep) -> Callable:
        def replay(*inputs):
            self.counters.replays += 1
            return captured(*inputs)

        return replay

    def _uncaptured(self, fn: Callable) -> Callable:
        def run(*inputs):
            self.counters.uncaptured += 1
            return fn(*inputs)

        return run

    def _make_step(self, read_len: int, kind: str) -> Callable:
        cfg, decoder, cache, banned, stop_table = self.cfg, self.decoder, self.cache, self.banned, self.stop_table

        def step(tokens, positions, cache_lens, slots, allowed, thresholds, pads, ordered, lo, stop_kind):
            R, T = tokens.shape
            hidden = decoder(tokens, positions, cache, cache_lens, read_len, slots=slots)  # (R, T, d)
            logits = decoder.model.logits(hidden).float()
            logits[..., banned] = float("-inf")
            conf = decoder.confidence(logits.view(R * T, -1))
            score = confidence_score(conf, kind).view(R, T).to(torch.float64)
            masked = allowed & (tokens == cfg.mask_id)
            offsets = torch.arange(T, device=tokens.device)[None]
            in_middle = offsets >= lo[:, None]
            candidates = conf.token.view(R, T)
            commit = sampling.select_threshold(score, masked, thresholds[:, None])
            ends = stop_table[stop_kind[:, None], candidates] & in_middle & ordered[:, None]
            commit = sampling.hold_back_ends(commit, score, masked, ends, offsets)
            new = torch.where(commit, candidates, tokens)
            is_stop = stop_table[stop_kind[:, None], new] & in_middle
            first_stop = torch.where(is_stop, offsets, T).min(-1).values
            fill = pads[:, None] & (offsets > first_stop[:, None]) & (new == cfg.mask_id)
            new = torch.where(fill, torch.full_like(new, cfg.eos_id), new)
            first_open = torch.where((new == cfg.mask_id) & in_middle, offsets, T).min(-1).values
            flags = torch.stack([first_open, first_stop, torch.zeros_like(first_open)], 1)
            assert flags.shape[1] == FLAGS
            return new, torch.cat([new, flags], 1).double()

        return step
