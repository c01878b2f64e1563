"""Decoding rules for masked diffusion: pure functions of logits, no model inside.

A step proposes a candidate token for every masked position of the current block and then decides
which of them to commit. Candidates come from `propose`; commits from one of the rules:
- `select_fixed`: the k most confident masked positions (LLaDA's low-confidence remasking; with
  `transfer_schedule` spreading a block's masks evenly over a fixed number of steps);
- `select_threshold`: every masked position whose confidence >= tau, and at least the single most
  confident one (Fast-dLLM's parallel rule).
`hold_back_ends` then keeps an end token from committing while a mask is left before it.
Confidence is one of "prob" (probability of the candidate), "margin" (top-1 minus top-2
probability) or "entropy" (exp(-H): 1 for a certain prediction, 1/V for a uniform one), so that one
threshold in (0, 1] reads the same way for all three.
"""

from __future__ import annotations

import torch

CONFIDENCE_KINDS = ("prob", "margin", "entropy")


def transfer_schedule(mask_count: int, steps: int) -> list[int]:
    """How many tokens to commit at each of `steps` steps so that `mask_count` masks are filled
    as evenly as possible, larger shares first (LLaDA's get_num_transfer_tokens)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    base, extra = divmod(mask_count, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set to -inf every logit outside the smallest set whose probability mass reaches top_p."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    drop_sorted = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the token that crosses top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def add_gumbel_noise(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gumbel-max in float64 (low precision Gumbel noise hurts masked diffusion sampling).

    argmax(logits / T + Gumbel) samples softmax(logits / T); at T = 0 this is plain argmax.
    """
    if temperature <= 0:
        return logits
    logits = logits.to(torch.float64)
    u = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
    return logits / temperature + gumbel


def confidence(probs: torch.Tensor, candidates: torch.Tensor, kind: str = "prob") -> torch.Tensor:
    """probs (..., V) float, candidates (...) long -> confidence (...) in (0, 1]."""
    if kind == "prob":
        return probs.gather(-1, candidates[..., None]).squeeze(-1)
    if kind == "margin":
        top2 = probs.topk(2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    if kind == "entropy":
        entropy = -(probs * probs.clamp_min(1e-30).log()).sum(-1)
        return torch.exp(-entropy)
    raise ValueError(f"unknown confidence kind {kind!r}; expected one of {CONFIDENCE_KINDS}")


def propose(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_p: float = 1.0,
    kind: str = "prob",
    generators: list[torch.Generator | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B, N, V) -> candidates (B, N) long and their confidence (B, N) float64.

    Candidates are Gumbel-max samples (argmax at temperature 0); confidence is measured on the
    unperturbed, top-p filtered distribution. One generator per row keeps a row's draws independent
    of which other rows share the batch. Sampling works in float64 (Gumbel noise needs it); greedy
    decoding only compares probabilities with a threshold, which float32 resolves.
    """
    sampling = temperature > 0 or top_p < 1.0
    logits = top_p_filter(logits.to(torch.float64 if sampling else torch.float32), top_p)
    if temperature > 0:
        rows = [
            add_gumbel_noise(logits[b], temperature, None if generators is None else generators[b])
            for b in range(logits.shape[0])
        ]
        candidates = torch.stack(rows).argmax(-1)
    else:
        candidates = logits.argmax(-1)
    probs = logits.softmax(-1)
    return candidates, confidence(probs, candidates, kind).to(torch.float64)


def select_fixed(conf: torch.Tensor, masked: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Commit the k[b] most confident masked positions of each row. conf, masked (B, N); k (B,)."""
    score = conf.masked_fill(~masked, float("-inf"))
    order = score.argsort(dim=-1, descending=True)
    rank = torch.empty_like(order).scatter_(
        -1, order, torch.arange(conf.shape[-1], device=conf.device).expand_as(order)
    )
    return masked & (rank < k[:, None])


def select_threshold(conf: torch.Tensor, masked: torch.Tensor, tau: float) -> torch.Tensor:
    """Commit every masked position with conf >= tau, and at least the most confident masked one
    in each row that still has masks."""
    commit = masked & (conf >= tau)
    best = conf.masked_fill(~masked, float("-inf")).argmax(-1, keepdim=True)
    forced = torch.zeros_like(masked).scatter_(-1, best, True) & masked
    return commit | forced


def hold_back_ends(
    chosen: torch.Tensor, conf: torch.Tensor, masked: torch.Tensor, ends: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """`chosen` without the end tokens that would commit while a mask is left before them.

    All (B, N): the positions a rule chose, their confidence, which were masked before the step,
    which candidates are end tokens; `offsets` (B, N or 1, N) where each position lies in its block.
    A diffusion model is often surest of the end-of-text padding at the far end of a block, so a
    rule that commits the most confident position first ends an answer before its last tokens are
    written (`return x **` and then the end). Here an end token commits only where every position
    before it is decided, this step included; a row whose only choices were held back commits its
    most confident remaining choice instead (a non-end token, or the end at its first open
    position), so every row with masks still commits one token per step. Device ops only.
    """
    far = torch.iinfo(torch.long).max
    offsets = offsets.expand_as(chosen)
    first_open = lambda open_: torch.where(open_, offsets, far).min(-1, keepdim=True).values
    kept = chosen & ~(ends & (offsets > first_open(masked & ~chosen)))
    eligible = masked & ~(ends & (offsets > first_open(masked)))
    best = conf.masked_fill(~eligible, float("-inf")).argmax(-1, keepdim=True)
    fallback = torch.zeros_like(chosen).scatter_(-1, best, True) & eligible
    return torch.where(kept.any(-1, keepdim=True), kept, fallback)
