"""Sequence layout and attention rule, shared by training and decoding so the two cannot drift.

sdls's own models (infill_layout "fim", attention "block_causal") see

    [BOS] <fim_suffix> suffix <fim_prefix> prefix <fim_middle> | middle block 0 | middle block 1 | ...

The context is causal token by token: encoding a longer prefix never changes the keys/values of
the tokens before it, so an encoded context is exact and reusable, and what changes while typing
(the end of the prefix) comes last. Middle blocks are bidirectional inside and causal between
blocks. The middle ends with at least one end token and is padded with end tokens to whole blocks,
so the model learns where an infill stops.

Checkpoints trained elsewhere lay blocks out their own way (`cfg.block_align`): "sequence" (SDAR,
Stable-DiffCoder, Fast-dLLM v2) cuts the whole sequence into blocks from position 0, so the context
is block-causal too and its tail shares a block with the first masks; "generation" (Tiny-A2D's
BD3LM sampler) counts blocks from the start of the middle, backwards through the context. Either
way a block id is the position where its block starts (`block_start`).

Every token carries a block id (`bid`) and a stream flag (`noisy`):
- clean token q sees clean token k when bid[k] <= bid[q]  (a context token is a block of its own);
- noisy token q (a block being denoised) sees clean tokens of earlier blocks, bid[k] < bid[q],
  and the noisy tokens of its own block, bid[k] == bid[q];
- nothing sees a noisy token of another block.
Training lays the clean middle and a noisy copy of it side by side (one forward, every block
learns); decoding keeps the clean tokens in the KV cache and feeds one noisy block at a time. For
bidirectional checkpoints every valid token sees every other.
"""

from __future__ import annotations

import torch

from .config import ModelConfig

CACHE_BID = -1  # block id of cached keys: earlier than anything new


def fim_context(cfg: ModelConfig, prefix: list[int], suffix: list[int]) -> list[int]:
    """The context tokens of an infill in the fim layout, ending with <fim_middle>."""
    head = [cfg.bos_id] if cfg.bos_id is not None else []
    return head + [cfg.fim_suffix_id, *suffix, cfg.fim_prefix_id, *prefix, cfg.fim_middle_id]


def infill_context(cfg: ModelConfig, prefix: list[int], suffix: list[int]) -> tuple[list[int], list[int]]:
    """(context before the middle, tokens after it) for cfg.infill_layout: fim puts the suffix in the
    context, in_place after the middle, prefix_only nowhere (a block-causal model without
    fill-in-the-middle tokens could not see it anyway)."""
    if cfg.infill_layout == "fim":
        return fim_context(cfg, prefix, suffix), []
    head = [cfg.bos_id] if cfg.bos_id is not None else []
    return head + prefix, suffix if cfg.infill_layout == "in_place" else []


def pad_middle(middle: list[int], block_size: int, eos_id: int) -> list[int]:
    """Append one end token, then end tokens up to a whole number of blocks."""
    padded = [*middle, eos_id]
    return padded + [eos_id] * (-len(padded) % block_size)


def context_block_ids(start: int, count: int) -> list[int]:
    """Causal context: each token is its own block (its position)."""
    return list(range(start, start + count))


def block_origin(cfg: ModelConfig, ctx_len: int) -> int:
    """A position where a block starts: 0 for "sequence" alignment, the end of the context otherwise."""
    return 0 if cfg.block_align == "sequence" else ctx_len


def block_start(position: int, block_size: int, origin: int) -> int:
    """Start of the block holding `position` when blocks of block_size start at `origin` (and at 0)."""
    return max(0, origin + (position - origin) // block_size * block_size)


def middle_block_id(ctx_len: int, offset: int, block_size: int) -> int:
    """Block id of the middle token `offset` tokens after a context of ctx_len (sdls's own layout):
    the position where its block starts. Training, its evaluation and the engine all use this."""
    return ctx_len + offset // block_size * block_size


def canvas_block_id(cfg: ModelConfig, position: int, ctx_len: int, mid_end: int, block_size: int) -> int:
    """The block id of a position of a decoding canvas (context, middle, in-place suffix)."""
    if cfg.block_align == "context" or cfg.attention == "bidirectional":
        if position < ctx_len or position >= mid_end:
            return position  # context (and an in-place suffix): causal, one token per block
        return middle_block_id(ctx_len, position - ctx_len, block_size)
    return block_start(position, block_size, block_origin(cfg, ctx_len))


def first_block_start(cfg: ModelConfig, ctx_len: int, block_size: int) -> int:
    """Where the first block to decode starts: at the middle, or (sequence alignment) at the start of
    the block that holds the context's tail, which is then decoded together with the first masks."""
    if cfg.attention == "block_causal" and cfg.block_align == "sequence":
        return block_start(ctx_len, block_size, 0)
    return ctx_len


def middle_length(cfg: ModelConfig, ctx_len: int, max_new: int, block_size: int) -> int:
    """Masks to lay out for up to max_new tokens: the middle ends on a block boundary."""
    start = first_block_start(cfg, ctx_len, block_size)
    return -(-(ctx_len - start + max_new) // block_size) * block_size - (ctx_len - start)


def padded_middle(cfg: ModelConfig, ctx_len: int, tokens: list[int], block_size: int, fill: int) -> list[int]:
    """`tokens` followed by `fill` up to the block boundary `middle_length` puts the middle's end on."""
    return tokens + [fill] * (middle_length(cfg, ctx_len, len(tokens), block_size) - len(tokens))


def reusable_length(cfg: ModelConfig, common: int, block_size: int, origin: int, cached_origin: int) -> int:
    """How much of an encoded context that agrees with a new one on its first `common` tokens may be
    reused exactly: all of it when the context is causal token by token; its whole blocks when it is
    block-causal (a block's keys see every token of it), and nothing when the blocks start elsewhere
    (generation alignment after the context grew by a number of tokens that is not a whole block)."""
    if cfg.attention != "block_causal" or cfg.block_align == "context":
        return common
    if (origin - cached_origin) % block_size:
        return 0
    return block_start(common, block_size, origin)


def attention_mask(
    q_bid: torch.Tensor,
    q_noisy: torch.Tensor,
    k_bid: torch.Tensor,
    k_noisy: torch.Tensor,
    k_valid: torch.Tensor,
    bidirectional: bool = False,
) -> torch.Tensor:
    """Bool mask (B, 1, Tq, Tk), True where query q may attend to key k.

    q_bid, q_noisy: (B, Tq); k_bid, k_noisy, k_valid: (B, Tk).
    """
    if bidirectional:
        visible = k_valid[:, None, :].expand(-1, q_bid.shape[1], -1)
    else:
        qb, kb = q_bid[:, :, None], k_bid[:, None, :]
        qn, kn = q_noisy[:, :, None], k_noisy[:, None, :]
        clean_to_clean = ~qn & ~kn & (kb <= qb)
        noisy_to_clean = qn & ~kn & (kb < qb)
        noisy_to_noisy = qn & kn & (kb == qb)
        visible = (clean_to_clean | noisy_to_clean | noisy_to_noisy) & k_valid[:, None, :]
    return visible[:, None]


def training_layout(c: int, m: int, block_size: int) -> tuple[list[int], list[int], list[bool]]:
    """Positions, block ids and noisy flags for a training row laid out as
    [context (c tokens) | clean middle (m) | noisy copy of the middle (m)].

    `m` must be a whole number of blocks; block b of the middle has block id c + b * block_size and
    the same positions in both streams, exactly as the engine sees it when decoding.
    """
    assert m % block_size == 0, f"middle length {m} is not a multiple of block size {block_size}"
    positions = list(range(c + m)) + list(range(c, c + m))
    middle_bids = [middle_block_id(c, i, block_size) for i in range(m)]
    bids = context_block_ids(0, c) + middle_bids + middle_bids
    noisy = [False] * (c + m) + [True] * m
    return positions, bids, noisy
