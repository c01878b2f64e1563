"""One forward over a batch of rows: per-row inputs by cache policy, padding into one batch, logits.

Every row builds its own inputs (`RowInputs`); rows are padded into one forward and the attention
mask keeps each row to itself, so a job's tokens do not depend on its batch mates. Inputs are
built from host-side facts (positions, block ids, cache lengths) and copied to the device without
waiting for it; nothing here reads a device value back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cache import KVCache
from ..layout import CACHE_BID, attention_mask, canvas_block_id
from ..transformer import CacheIO, Transformer
from .rows import Row

PAD_BID = 1 << 40  # block id of padding queries: they see every valid clean key, nobody sees them


def to_device(values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Host values on the device without a host sync (an asynchronous copy; pinned memory on CUDA)."""
    host = torch.tensor(values, dtype=dtype)
    if device.type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True)


@dataclass
class RowInputs:
    positions: list[int]  # canvas positions fed in this forward
    block_ids: list[int]
    noisy: list[bool]
    cache_valid: tuple[int, tuple[int, int] | None] | None  # (read_len, hole [lo, hi) not valid); None: no read
    writes: list[tuple[int, int, int]]  # (cache_start, token_start, count)
    logit_rows: list[int]  # which fed tokens predict the current block's positions


class BatchForward:
    def __init__(self, model: Transformer, cache: KVCache, banned: torch.Tensor, fast=None):
        self.model, self.cfg, self.cache, self.banned = model, model.cfg, cache, banned
        self.device = banned.device
        self.fast = fast  # FastDecoder, or None: the plain path serves every step

    def fast_eligible(self, rows: list[Row]) -> bool:
        """A step the FastDecoder serves: every row a block over its cache with nothing pending to encode."""
        same_width = len({r.blk for r in rows}) == 1
        return self.fast is not None and same_width and all(r.policy == "exact" and r.written == r.bs for r in rows)

    def __call__(self, rows: list[Row], wanted: list[list[int]]) -> list[torch.Tensor]:
        """Each row's logits at the wanted block offsets, shape (len(wanted[b]), V), banned ids at -inf.

        Asking only for the positions still masked skips most of the output projection, the
        largest matmul of a small model's step, and the softmax over the vocabulary after it."""
        for row in rows:
            row.stats.forwards += 1
        if self.fast_eligible(rows):
            return self._fast_forward(rows, wanted)
        return self._plain_forward(rows, wanted)

    def _plain_forward(self, rows: list[Row], wanted: list[list[int]]) -> list[torch.Tensor]:
        inputs = [self.row_inputs(r) for r in rows]
        T = max(len(x.positions) for x in inputs)
        read_len = max((x.cache_valid[0] for x in inputs if x.cache_valid is not None), default=0)
        R, dev = len(rows), self.device
        positions, q_bid, q_noisy, new_valid = [], [], [], []
        cache_valid, writes = [], []
        for b, x in enumerate(inputs):
            n, pad = len(x.positions), T - len(x.positions)
            positions.append(x.positions + [0] * pad)
            q_bid.append(x.block_ids + [PAD_BID] * pad)
            q_noisy.append(x.noisy + [False] * pad)
            new_valid.append([True] * n + [False] * pad)
            valid = [False] * read_len
            if x.cache_valid is not None:
                length, hole = x.cache_valid
                valid[:length] = [True] * length
                if hole is not None:
                    valid[hole[0] : hole[1]] = [False] * (hole[1] - hole[0])
            cache_valid.append(valid)
            writes += [(b, dst, src, count) for dst, src, count in x.writes]
        pos = to_device(positions, torch.long, dev)
        # Each row's tokens come from its device canvas (the host copy may lag a step behind it).
        tokens = torch.stack([rows[b].seq[pos[b]] for b in range(R)])
        valid_new = to_device(new_valid, torch.bool, dev)
        tokens = torch.where(valid_new, tokens, torch.full_like(tokens, self.cfg.pad_id))
        q_bid_t = to_device(q_bid, torch.long, dev)
        q_noisy_t = to_device(q_noisy, torch.bool, dev)
        k_bid = torch.cat([torch.full((R, read_len), CACHE_BID, dtype=torch.long, device=dev), q_bid_t], 1)
        k_noisy = torch.cat([torch.zeros((R, read_len), dtype=torch.bool, device=dev), q_noisy_t], 1)
        k_valid = torch.cat([to_device(cache_valid, torch.bool, dev).view(R, read_len), valid_new], 1)
        mask = attention_mask(
            q_bid_t, q_noisy_t, k_bid, k_noisy, k_valid, self.cfg.attention == "bidirectional"
        ).contiguous()
        ar = torch.arange(T, device=dev)
        mask[:, 0, ar, read_len + ar] = True  # padding sees itself: no empty rows
        needs_cache = read_len > 0 or writes
        cache_io = CacheIO(self.cache, [r.slot for r in rows], read_len, writes) if needs_cache else None
        hidden = self.model(tokens, pos, mask, cache_io)  # (R, T, D)
        for row in rows:
            if row.policy == "exact":
                row.written = row.bs
        return self.logits_at(hidden, [[x.logit_rows[j] for j in w] for x, w in zip(inputs, wanted)])

    def row_inputs(self, row: Row) -> RowInputs:
        shift = int(self.cfg.logit_shift)
        bs, be, n = row.bs, row.be, len(row.tokens)
        cache_valid: tuple[int, tuple[int, int] | None] | None
        if row.policy == "exact":
            # A shifted model predicts the block's first position from the token before it: feed that
            # (cached) token again, reading the cache only up to it.
            first = max(0, min(row.written, bs - shift))
            cache_valid = (first, None) if first else None
            positions = list(range(first, be))
            writes = [(first, 0, bs - first)] if bs > first else []
        elif row.policy == "none":
            first = 0
            end = be if self.cfg.attention == "block_causal" else n
            positions, cache_valid, writes = list(range(end)), None, []
        elif row.step == 0:  # approx, first step of a block: re-encode the whole canvas into the cache
            first = 0
            positions, cache_valid = list(range(n)), None
            writes = [(0, 0, n)]
        else:  # approx: the block (and the token predicting its first position) over the cache
            first = bs - shift
            positions, writes = list(range(first, be)), []
            cache_valid = (n, (first, be))
        block_ids = [canvas_block_id(self.cfg, p, row.ctx_len, row.mid_end, row.blk) for p in positions]
        noisy = [bs <= p < be for p in positions]
        logit_rows = [max(0, p - shift) - first for p in range(bs, be)]
        return RowInputs(positions, block_ids, noisy, cache_valid, writes, logit_rows)

    def logits_at(self, hidden: torch.Tensor, rows_index: list[list[int]]) -> list[torch.Tensor]:
        """Output logits of the given hidden rows of each batch row, banned tokens at -inf."""
        width = max(1, max(len(ix) for ix in rows_index))
        index = to_device([ix + [0] * (width - len(ix)) for ix in rows_index], torch.long, self.device)
        picked = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
        logits = self.model.logits(picked).float()  # (R, width, V)
        logits[..., self.banned] = float("-inf")
        return [logits[b, : len(ix)] for b, ix in enumerate(rows_index)]

    def _fast_forward(self, rows: list[Row], wanted: list[list[int]]) -> list[torch.Tensor]:
        """A block step over the cache alone (nothing pending to encode) on the FastDecoder."""
        from ..fast_path import length_bucket

        dev = self.device
        tokens = torch.stack([r.seq[r.bs : r.be] for r in rows])  # (R, blk)
        positions = to_device([list(range(r.bs, r.be)) for r in rows], torch.long, dev)
        cache_lens = to_device([r.written for r in rows], torch.long, dev)
        read_len = min(length_bucket(max(r.written for r in rows)), self.cache.max_len)
        slots = to_device([r.slot for r in rows], torch.long, dev)
        hidden = self.fast(tokens, positions, self.cache, cache_lens, read_len, slots=slots)
        return self.logits_at(hidden, wanted)
