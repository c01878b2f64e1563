"""On-policy step reduction: distil the model's own verified slow decodings into few-step states.

The model decodes a training prompt twice: slowly (one token per step) and at a low step budget.
A verifier (supplied by the caller; sdls's checks parsing, the clean-up and agreement with the slow
output) decides which outputs may be learned from. The target of a prompt is its slow output, the
order is the slow trajectory compressed to the low budget: state s of a block shows what the slow
decoding had committed after s / budget of its steps and asks for everything else at once. Raising
the probability of all the remaining tokens together is what lets the threshold rule commit them in
one step, which is the self-distillation of dParallel (certainty-forcing distillation, arXiv
2509.26488) and T3D (trajectory self-distillation, arXiv 2602.12262); the states and targets come
from the model's own decodings, as in on-policy distillation (GKD, arXiv 2306.13649).
"""

from __future__ import annotations

from .order_stage import OrderedSpan
from .parallel_decode import Decoded


def compress_order(commit_step: tuple[int, ...], block_size: int, budget: int) -> list[int]:
    """Map each block's commit steps onto `budget` steps, keeping their order."""
    out: list[int] = []
    for b0 in range(0, len(commit_step), block_size):
        steps = commit_step[b0 : b0 + block_size]
        span = max(steps) + 1 if steps and max(steps) >= 0 else 1
        out += [max(0, s) * budget // span for s in steps]
    return out


def distillation_spans(
    contexts: list[list[int]], slow: list[Decoded], keep: list[bool], block_size: int, budget: int
) -> list[OrderedSpan]:
    """The kept prompts as training spans: slow output as target, its order at the low budget."""
    return [
        OrderedSpan(list(ctx), list(dec.tokens), compress_order(dec.commit_step, block_size, budget))
        for ctx, dec, k in zip(contexts, slow, keep)
        if k
    ]
