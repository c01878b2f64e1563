"""One forward over spans being denoised, laid out exactly as training lays them out.

A canvas row is [context | clean middle | noisy middle] (`layout.training_layout`): block b of the
noisy middle sees the context, the clean blocks before b and itself, so one forward predicts every
block of every row at once. The order and on-policy stages use it to replay and score trajectories:
the clean middle holds what earlier blocks committed, the noisy middle the current masks.
"""

from __future__ import annotations

import torch

from ..config import ModelConfig
from ..layout import attention_mask, training_layout
from .objectives import PAD_BID


@torch.no_grad()
def middle_log_probs(
    model, cfg: ModelConfig, contexts: list[list[int]], cleans: torch.Tensor, noisies: torch.Tensor
) -> torch.Tensor:
    """Log-probabilities (R, M, V) the model gives every position of each row's noisy middle.

    contexts: R token lists (any lengths); cleans, noisies: (R, M) long, M a whole number of blocks.
    """
    device = next(model.parameters()).device
    rows, m = cleans.shape
    if m % cfg.block_size:
        raise ValueError(f"middle length {m} is not a whole number of {cfg.block_size}-token blocks")
    length = max(len(c) for c in contexts) + 2 * m
    tokens = torch.full((rows, length), cfg.eos_id, dtype=torch.long)
    positions = torch.zeros((rows, length), dtype=torch.long)
    bids = torch.full((rows, length), PAD_BID, dtype=torch.long)
    noisy = torch.zeros((rows, length), dtype=torch.bool)
    valid = torch.zeros((rows, length), dtype=torch.bool)
    where = torch.zeros((rows, m), dtype=torch.long)  # index of each noisy middle token in its row
    for r, context in enumerate(contexts):
        c = len(context)
        pos, bid, nz = training_layout(c, m, cfg.block_size)
        n = c + 2 * m
        tokens[r, :c] = torch.tensor(context, dtype=torch.long)
        tokens[r, c : c + m] = cleans[r]
        tokens[r, c + m : n] = noisies[r]
        positions[r, :n] = torch.tensor(pos)
        bids[r, :n] = torch.tensor(bid)
        noisy[r, :n] = torch.tensor(nz)
        valid[r, :n] = True
        where[r] = torch.arange(c + m, n)
    tokens, positions, bids, noisy, valid = (x.to(device) for x in (tokens, positions, bids, noisy, valid))
    mask = attention_mask(bids, noisy, bids, noisy, valid, cfg.attention == "bidirectional")
    hidden = model(tokens, positions, mask)  # (R, T, d)
    picked = hidden.gather(1, where.to(device)[..., None].expand(-1, -1, hidden.shape[-1]))
    return model.logits(picked).float().log_softmax(-1).cpu()
