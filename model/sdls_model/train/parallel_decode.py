"""The model's own greedy decoding of spans, block by block, with the trajectory it took.

Used by the on-policy stage to decode training prompts the way the engine does (the same commit
rules from `sampling`) while keeping what training needs and the engine does not return: the step
at which every position was committed. Two budgets:
- `steps=n`: each block in n steps (`transfer_schedule`, LLaDA's fixed-count rule); n = block size
  is the slow one-token-per-step decoding;
- `threshold=tau`: Fast-dLLM's rule, every masked position with confidence >= tau (at least one).
A block is done once an end token is committed with nothing open before it: the masks after it
become end tokens (committed at that step), and the row stops there, as the engine's rows do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..sampling import select_fixed, select_threshold, transfer_schedule
from .canvas import middle_log_probs


@dataclass(frozen=True)
class Decoded:
    tokens: tuple[int, ...]  # the whole middle (blocks after the stop are end tokens)
    commit_step: tuple[int, ...]  # per position: the step of its block it was committed at
    forwards: int  # forwards this row took part in
    committed: int  # tokens up to and including the first end token

    @property
    def tokens_per_forward(self) -> float:
        return self.committed / max(1, self.forwards)

    def answer(self, stop_ids) -> list[int]:
        """The tokens before the first end token."""
        return next(([*self.tokens[:i]] for i, t in enumerate(self.tokens) if t in stop_ids), [*self.tokens])


@torch.no_grad()
def decode_spans(
    model,
    contexts: list[list[int]],
    blocks: int,
    steps: int | None = None,
    threshold: float | None = None,
    batch_rows: int = 32,
) -> list[Decoded]:
    """Greedy decoding of `blocks` blocks after each context, with one of the two budgets."""
    if (steps is None) == (threshold is None):
        raise ValueError("give exactly one of steps and threshold")
    out: list[Decoded] = []
    for i in range(0, len(contexts), batch_rows):
        out += _decode(model, contexts[i : i + batch_rows], blocks, steps, threshold)
    return out


def _decode(model, contexts, blocks: int, steps, threshold) -> list[Decoded]:
    cfg: ModelConfig = model.cfg
    bs = cfg.block_size
    if steps is not None and not 1 <= steps <= bs:
        raise ValueError(f"steps must be in [1, {bs}], got {steps}")
    rows, m = len(contexts), blocks * bs
    tokens = torch.full((rows, m), cfg.eos_id, dtype=torch.long)
    commit = torch.full((rows, m), -1, dtype=torch.long)
    forwards = [0] * rows
    live = torch.ones(rows, dtype=torch.bool)  # rows that have not stopped yet
    stops = torch.tensor(sorted(cfg.stop_ids), dtype=torch.long)
    for b in range(blocks):
        lo, hi = b * bs, (b + 1) * bs
        masked = torch.zeros((rows, bs), dtype=torch.bool)
        masked[live] = True
        schedule = transfer_schedule(bs, steps) if steps is not None else None
        step = 0
        while masked.any():
            noisy = tokens.clone()
            noisy[:, lo:hi] = torch.where(masked, cfg.mask_id, tokens[:, lo:hi])
            active = masked.any(-1)
            logp = middle_log_probs(model, cfg, contexts, tokens, noisy)[:, lo:hi]  # (R, bs, V)
            conf, cand = logp.exp().max(-1)
            if schedule is not None:
                k = torch.full((rows,), schedule[step] if step < len(schedule) else bs)
                pick = select_fixed(conf.double(), masked, k)
            else:
                pick = select_threshold(conf.double(), masked, threshold)
            block = tokens[:, lo:hi]
            block[pick] = cand[pick]
            commit[:, lo:hi][pick] = step
            masked &= ~pick
            _close_ended(block, masked, commit[:, lo:hi], stops, cfg.eos_id, step)
            for r in active.nonzero().flatten().tolist():
                forwards[r] += 1
            step += 1
        live &= ~torch.isin(tokens[:, lo:hi], stops).any(-1)
    result = []
    for r in range(rows):
        row = tokens[r].tolist()
        first_stop = next((i for i, t in enumerate(row) if t in cfg.stop_ids), m - 1)
        result.append(Decoded(tuple(row), tuple(commit[r].tolist()), forwards[r], first_stop + 1))
    return result


def _close_ended(block, masked, commit, stops, eos_id: int, step: int) -> None:
    """Rows whose block holds a committed end token with nothing open before it: fill the rest."""
    bs = block.shape[1]
    offsets = torch.arange(bs)
    is_stop = torch.isin(block, stops) & ~masked
    first_stop = torch.where(is_stop, offsets, bs).min(-1).values
    first_open = torch.where(masked, offsets, bs).min(-1).values
    ended = (first_stop < first_open)[:, None] & masked  # masks after the end token
    block[ended] = eos_id
    commit[ended] = step
    masked &= ~ended
