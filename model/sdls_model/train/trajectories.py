"""Denoising trajectories of training spans: the order in which the model commits a span's tokens.

A trajectory of a span (context, middle) is the step at which each middle position was committed.
The tokens are the span's own (the corpus is the ground truth); the model chooses the order, the
way the engine does: at each step every block commits the masked positions where the model is most
sure of its own candidate (its top probability), `transfer_schedule(block, steps)` of them per
step. Temperature 0 is the model's greedy order; a temperature T > 0 ranks positions by
log(confidence) / T plus Gumbel noise (a Plackett-Luce draw over orders), seeded per span and
trajectory so a seed reproduces every trajectory whatever the batching.

Blocks of one span advance together: block b sees the clean blocks before it (the span's true
tokens), exactly what it would see once those blocks were decoded.

Each trajectory carries the log-probability the model gave each token at the step it was
committed. Their sum is the log-likelihood of the span along that order; the masked-diffusion ELBO
is its average over orders, so ranking trajectories by it keeps the orders under which the model
explains the span best (Seed Diffusion filters its distilled trajectories by the ELBO).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..sampling import transfer_schedule
from .canvas import middle_log_probs


@dataclass(frozen=True)
class Trajectory:
    commit_step: tuple[int, ...]  # per middle position: the step (within its block) it was committed at
    log_probs: tuple[float, ...]  # per middle position: log p(its token) at that step
    temperature: float

    @property
    def log_likelihood(self) -> float:
        return float(sum(self.log_probs))

    @property
    def mean_log_likelihood(self) -> float:
        return self.log_likelihood / max(1, len(self.log_probs))


def _generator(seed: int, span: int, draw: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + span) * 1009 + draw)
    return g


@torch.no_grad()
def sample_trajectories(
    model,
    spans: list[tuple[list[int], list[int]]],
    k: int,
    steps: int,
    temperature: float = 1.0,
    seed: int = 0,
    batch_rows: int = 32,
) -> list[list[Trajectory]]:
    """K trajectories for each (context, middle) span: the first greedy, the others at `temperature`.

    Every middle is a whole number of blocks; each block is committed in `steps` steps."""
    cfg: ModelConfig = model.cfg
    bs = cfg.block_size
    if not 1 <= steps <= bs:
        raise ValueError(f"steps must be in [1, {bs}] (the block size), got {steps}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    jobs = [(s, d) for s in range(len(spans)) for d in range(k)]
    out: list[list[Trajectory | None]] = [[None] * k for _ in spans]
    by_length: dict[int, list[tuple[int, int]]] = {}
    for job in jobs:  # rows of one forward share a middle length
        by_length.setdefault(len(spans[job[0]][1]), []).append(job)
    schedule = transfer_schedule(bs, steps)
    for group in by_length.values():
        for i in range(0, len(group), batch_rows):
            chunk = group[i : i + batch_rows]
            for (s, d), traj in zip(chunk, _run(model, cfg, spans, chunk, schedule, temperature, seed)):
                out[s][d] = traj
    return [[t for t in row if t is not None] for row in out]


def _run(model, cfg: ModelConfig, spans, chunk, schedule: list[int], temperature: float, seed: int):
    bs = cfg.block_size
    contexts = [spans[s][0] for s, _ in chunk]
    middles = torch.tensor([spans[s][1] for s, _ in chunk], dtype=torch.long)  # (R, M)
    rows, m = middles.shape
    blocks = m // bs
    masked = torch.ones((rows, m), dtype=torch.bool)
    commit = torch.full((rows, m), -1, dtype=torch.long)
    logp_at_commit = torch.zeros((rows, m))
    temps = [0.0 if d == 0 else temperature for _, d in chunk]
    gens = [_generator(seed, s, d) for s, d in chunk]
    for step, count in enumerate(schedule):
        noisy = middles.masked_fill(masked, cfg.mask_id)
        logp = middle_log_probs(model, cfg, contexts, middles, noisy)  # (R, M, V)
        conf = logp.max(-1).values  # log of the model's top probability: how sure it is of its own pick
        true_lp = logp.gather(-1, middles[..., None]).squeeze(-1)
        for r in range(rows):
            score = conf[r].clone()
            if temps[r] > 0:
                u = torch.rand(m, generator=gens[r], dtype=torch.float64).clamp_min(1e-300)
                score = score.double() / temps[r] - torch.log(-torch.log(u))
            score = score.double().masked_fill(~masked[r], float("-inf")).view(blocks, bs)
            picked = score.topk(count, dim=-1).indices + torch.arange(blocks)[:, None] * bs  # (blocks, count)
            picked = picked.flatten()
            commit[r, picked] = step
            logp_at_commit[r, picked] = true_lp[r, picked]
            masked[r, picked] = False
    return [
        Trajectory(tuple(commit[r].tolist()), tuple(float(x) for x in logp_at_commit[r].tolist()), temps[r])
        for r in range(rows)
    ]
