"""Constrained-order fine-tuning: masks that follow a kept trajectory instead of uniform noise.

A kept trajectory says at which step each middle position was committed. A training block draws a
step s of its trajectory uniformly and shows the tokens committed before s, masking the rest: the
state the decoder was in at step s. The loss is the mask objective's (cross-entropy on the masked
positions, weighted by block length / masked count), so the model is trained on exactly the
partial states of the orders it is meant to follow (Seed Diffusion's constrained-order training).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..config import ModelConfig
from .objectives import Batch, Row, collate


@dataclass(frozen=True)
class OrderedSpan:
    context: list[int]
    middle: list[int]  # whole blocks
    commit_step: list[int]  # per middle position, the step of its block it was committed at


def order_noise(block: list[int], steps: list[int], mask_id: int, rng: random.Random) -> tuple[list[int], list[float]]:
    """The state of the block at a uniformly drawn step of its trajectory: what was committed
    before it is shown, the rest is masked and carries loss."""
    cut = rng.randrange(max(steps) + 1)
    masked = [s >= cut for s in steps]
    weight = len(block) / max(1, sum(masked))
    return (
        [mask_id if m else x for x, m in zip(block, masked)],
        [weight if m else 0.0 for m in masked],
    )


def ordered_batch(cfg: ModelConfig, spans: list[OrderedSpan], rng: random.Random, vocab_size: int) -> Batch:
    def noise(r: int, b0: int, block: list[int], rng: random.Random):
        return order_noise(block, spans[r].commit_step[b0 : b0 + len(block)], cfg.mask_id, rng)

    rows = [Row(s.context, s.middle, "") for s in spans]
    return collate(cfg, rows, 1, rng, vocab_size, noise=noise)


def uniform_batch(cfg: ModelConfig, spans: list[OrderedSpan], rng: random.Random, vocab_size: int) -> Batch:
    """The same spans under the first stage's uniform mask noise (the objective the order stage replaces)."""
    return collate(cfg, [Row(s.context, s.middle, "") for s in spans], 1, rng, vocab_size)
