"""A short fine-tuning loop for the later stages: AdamW, warmup then cosine, clipping, one device.

The order and on-policy stages hand it a function that builds the batch of a step; the loss is the
same weighted cross-entropy as the first two stages (`objectives.diffusion_loss`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from .objectives import Batch, diffusion_loss


def finetune(
    model,
    next_batch: Callable[[int], Batch],
    steps: int,
    lr: float,
    warmup: int = 10,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    log: Callable[[str], None] | None = None,
    log_every: int = 20,
) -> list[float]:
    """Train `model` for `steps` steps on next_batch(step); returns the loss of every step."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(steps):
        if step < warmup:
            rate = lr * (step + 1) / warmup
        else:
            rate = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))
        for group in optimizer.param_groups:
            group["lr"] = rate
        loss = diffusion_loss(model, next_batch(step).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at fine-tuning step {step}; lower the learning rate")
        losses.append(value)
        if log is not None and (step % log_every == 0 or step == steps - 1):
            log(f"finetune step {step + 1}/{steps} loss {value:.4f} lr {rate:.2e} {time.perf_counter() - start:.0f} s")
    model.eval()
    return losses


@torch.no_grad()
def mean_loss(model, batches: list[Batch]) -> float:
    """The objective on fixed batches (no gradient), for before/after figures."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = sum(float(diffusion_loss(model, b.to(device))) for b in batches)
    model.train(was_training)
    return total / max(1, len(batches))
