"""The commit rule, on the device: which predictions a step writes into a row's block, and the
row's status after it (the one thing a step reads back).

`denoise` applies the job's sampling rule (threshold or fixed count, sampling.py) to the open
positions; an infill's end tokens wait until no mask is left before them (unless its settings say
`ends_in_order=False`), and under the threshold rule the masks after a committed end token are
filled with end tokens. `score` rates the block's current tokens under the model (edit rounds re-mask the
doubted ones). `status` packs what the host needs next into one float64 vector per row: the
block's tokens, where its first open position and first end token are (end detection decided on
the device), whether an edit round changed nothing, and a score step's probabilities. The engine
concatenates the rows' vectors and reads them once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import sampling
from ..config import ModelConfig
from ..jobs import InfillJob
from .rows import SCORE, Row

FLAGS = 3  # first open offset, first end offset (from the row's middle), same block as before the round


@dataclass
class Status:
    """One row's status after a step, as read on the host."""

    tokens: list[int]  # the block after the step
    first_open: int  # first masked offset at or after the middle's start (blk: none)
    first_stop: int  # first end-token offset at or after the middle's start (blk: none)
    unchanged: bool  # edit rounds: the block equals the one before this round's re-masking
    probs: list[float]  # score steps: the probability of each block token under the model

    @property
    def ended(self) -> bool:
        """The middle ends in this block: an end token with nothing open before it."""
        return self.first_stop < self.first_open

    @staticmethod
    def parse(values: list[float], row: Row) -> Status:
        blk = row.blk
        tokens = [int(v) for v in values[:blk]]
        first_open, first_stop, same = (int(v) for v in values[blk : blk + FLAGS])
        probs = values[blk + FLAGS :] if row.phase == SCORE else []
        return Status(tokens, first_open, first_stop, bool(same), probs)

    @staticmethod
    def width(row: Row) -> int:
        return row.blk + FLAGS + (row.blk if row.phase == SCORE else 0)


class CommitRule:
    def __init__(self, cfg: ModelConfig, stop_table: torch.Tensor):
        self.cfg = cfg
        self.stop_table = stop_table  # (kinds, V) bool: which ids end a middle, per row stop kind
        self.device = stop_table.device

    def denoise(self, row: Row, logits: torch.Tensor, at: list[int]) -> None:
        """Fill the masked positions among block offsets `at` that the rule commits; logits
        (len(at), V) predict them. Device ops only."""
        s = row.settings
        block = row.seq[row.bs : row.be]
        at_t = torch.tensor(at, dtype=torch.long).to(self.device, non_blocking=True)
        current = block[at_t]
        masked = current == self.cfg.mask_id
        generators: list[torch.Generator | None] | None = [row.generator] if row.generator is not None else None
        candidates, conf = sampling.propose(logits[None], s.temperature, s.top_p, s.confidence, generators)
        if s.rule == "threshold":
            threshold = s.threshold if s.threshold is not None else self.cfg.threshold
            chosen = sampling.select_threshold(conf, masked[None], threshold)[0]
        else:
            k = row.schedule[min(row.step, len(row.schedule) - 1)]
            chosen = sampling.select_fixed(conf, masked[None], torch.full((1,), k, device=self.device))[0]
        if s.ends_in_order and isinstance(row.job, InfillJob):
            ends = self.stop_table[row.stop_kind][candidates[0]] & (at_t >= row.lo)
            chosen = sampling.hold_back_ends(chosen[None], conf, masked[None], ends[None], at_t[None])[0]
        block[at_t] = torch.where(chosen, candidates[0], current)
        if s.rule == "threshold" and isinstance(row.job, InfillJob):
            self.pad_after_end(row, block)

    def pad_after_end(self, row: Row, block: torch.Tensor) -> None:
        """Once an end token is committed, the masks after it become end tokens too: the answer
        stops there, and a middle is trained padded with end tokens, so this is what the model
        was taught to expect. (A confident model commits the padding first; filling it at once
        saves the forwards a block would otherwise spend on it.)"""
        middle = block[row.lo :]
        if not len(middle):
            return
        offsets = torch.arange(len(middle), device=self.device)
        first = torch.where(self.stop_table[row.stop_kind][middle], offsets, len(middle)).min()
        fill = (offsets > first) & (middle == self.cfg.mask_id)
        middle.copy_(torch.where(fill, torch.full_like(middle, self.cfg.eos_id), middle))

    def score(self, row: Row, logits: torch.Tensor, remask_below: float | None) -> torch.Tensor:
        """The probability of each current block token (logits (blk, V)); with `remask_below` (edit
        rounds) the doubted middle tokens become masks again and the block before that is kept."""
        block = row.seq[row.bs : row.be]
        p_current = logits.softmax(-1).gather(-1, block[:, None]).squeeze(-1)
        if remask_below is not None:
            doubted = p_current < remask_below
            doubted[: row.lo] = False  # context sharing the block is not revised
            row.before = block.clone()
            block.copy_(torch.where(doubted, torch.full_like(block, self.cfg.mask_id), block))
        return p_current

    def status(self, row: Row, probs: torch.Tensor | None) -> torch.Tensor:
        """The row's status vector (see Status), on the device."""
        block = row.seq[row.bs : row.be]
        offsets = torch.arange(row.blk, device=self.device)
        in_middle = offsets >= row.lo
        first_open = torch.where((block == self.cfg.mask_id) & in_middle, offsets, row.blk).min()
        first_stop = torch.where(self.stop_table[row.stop_kind][block] & in_middle, offsets, row.blk).min()
        same = (row.before == block).all() if row.before is not None else torch.zeros((), dtype=torch.bool)
        flags = torch.stack([first_open, first_stop, same.to(self.device).long()]).double()
        parts = [block.double(), flags]
        if probs is not None:
            parts.append(probs.double())
        return torch.cat(parts)
