"""A static, pre-allocated key/value cache with a fixed number of slots.

Each slot holds the encoded context of one document (or one job) and the blocks committed after
it. Shapes never change after allocation, so a decoding step can be captured and replayed. What a
slot holds (which token ids, how many) is the engine's bookkeeping, kept in `SlotState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import ModelConfig


def cache_plan(cfg: ModelConfig, max_batch: int, n_sessions: int, max_context: int, max_new_tokens: int):
    """(slots, length) of the cache an Engine allocates: a slot per batch row and per kept session,
    each long enough for the context, the middle and the block rounding around it."""
    return max_batch + n_sessions, max_context + max_new_tokens + 2 * cfg.block_size + 8


def cache_bytes(cfg: ModelConfig, n_slots: int, max_len: int, element_size: int) -> int:
    """Bytes of a KVCache of that shape (keys and values)."""
    return 2 * cfg.n_layers * n_slots * cfg.n_kv_heads * max_len * cfg.head_dim * element_size


class KVCache:
    def __init__(
        self,
        cfg: ModelConfig,
        n_slots: int,
        max_len: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        shape = (cfg.n_layers, n_slots, cfg.n_kv_heads, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)  # (L, slots, Hkv, S, D)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.n_slots, self.max_len = n_slots, max_len

    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2  # = cache_bytes(cfg, n_slots, max_len, element size)


@dataclass
class SlotState:
    """What one cache slot currently holds: the token ids whose keys/values are stored, in order."""

    owner: object = None
    tokens: list[int] = field(default_factory=list)
    exact_len: int = 0  # leading tokens encoded causally (the context): reusable by a later job
    block_origin: int = 0  # where the blocks of those tokens were counted from (layout.block_origin)

    @property
    def length(self) -> int:
        return len(self.tokens)
