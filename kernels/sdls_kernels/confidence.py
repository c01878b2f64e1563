"""Fused confidence over the vocabulary: argmax, max probability, entropy and margin in one pass.

For each selected row of logits (the masked positions of the block being decoded) the engine needs
the greedy token and how sure the model is of it. The reference materialises a float32 softmax of
(rows, vocab) — 20 MB for 32 rows of a 152k vocabulary — and reads it four times; the kernel
streams the logits once in their own dtype and keeps five running numbers per row (online softmax):

    m1, i1   largest logit and its first index      m2   second largest logit (ties count twice)
    s        sum exp(x - m1)                          a    sum exp(x - m1) * (x - m1)

from which  p_max = 1 / s,  margin = (1 - exp(m2 - m1)) / s,  entropy = log s - a / s.
A long row is split over several programs (so 32 rows still fill a GPU); a second small kernel
merges the partial statistics. Rows must hold at least one finite logit; -inf logits (suppressed
tokens) are allowed and contribute nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .dispatch import kernel_for

try:
    import triton
    import triton.language as tl
except ImportError:  # the references still work; dispatch never picks the kernel
    triton = tl = None


class Confidence(NamedTuple):
    token: torch.Tensor  # (M,) int64, argmax (first index on ties)
    prob: torch.Tensor  # (M,) float32, softmax probability of `token`
    entropy: torch.Tensor  # (M,) float32, in nats
    margin: torch.Tensor  # (M,) float32, top-1 minus top-2 probability


# -- reference ------------------------------------------------------------------------------------
def confidence_ref(
    logits: torch.Tensor, rows: torch.Tensor | None = None, compute_dtype: torch.dtype = torch.float32
) -> Confidence:
    """logits (N, V); rows (M,) indices into N or None for all rows."""
    x = logits if rows is None else logits[rows]
    x = x.to(compute_dtype)  # (M, V)
    logp = torch.log_softmax(x, dim=-1)
    p = logp.exp()
    top = torch.topk(p, min(2, p.shape[-1]), dim=-1).values  # (M, 2); a 1-token vocab has no runner-up
    top = torch.cat([top, torch.zeros_like(top[:, :1])], dim=-1)
    token = torch.argmax(x, dim=-1)
    entropy = -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)
    f32 = torch.float32
    return Confidence(token, top[:, 0].to(f32), entropy.to(f32), (top[:, 0] - top[:, 1]).to(f32))


# -- kernels --------------------------------------------------------------------------------------
def _confidence_partial_kernel(
    logits_ptr,
    rows_ptr,
    stride_row,
    V,
    chunk,
    m1_ptr,
    i1_ptr,
    m2_ptr,
    s_ptr,
    a_ptr,  # partial statistics, (M, n_splits) each
    n_splits,
    HAS_ROWS: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    """Program (r, j) reduces vocabulary chunk j of selected row r to (m1, i1, m2, s, a)."""
    r = tl.program_id(0)
    j = tl.program_id(1)
    row = tl.load(rows_ptr + r).to(tl.int64) if HAS_ROWS else r.to(tl.int64)
    base = logits_ptr + row * stride_row
    lo = j * chunk
    hi = tl.minimum(lo + chunk, V)
    neg_inf = float("-inf")
    m1 = tl.full((), neg_inf, tl.float32)
    m2 = tl.full((), neg_inf, tl.float32)
    i1 = tl.full((), 0, tl.int32)
    s = tl.full((), 0.0, tl.float32)
    a = tl.full((), 0.0, tl.float32)
    for start in range(lo, hi, BLOCK_V):
        offs = start + tl.arange(0, BLOCK_V)
        x = tl.load(base + offs, mask=offs < hi, other=neg_inf).to(tl.float32)  # (BLOCK_V,)
        b1 = tl.max(x, axis=0)
        bi = tl.argmax(x, axis=0).to(tl.int32) + start
        b2 = tl.max(tl.where(offs == bi, neg_inf, x), axis=0)
        new_m = tl.maximum(m1, b1)
        # Rescale the running sums to the new maximum. -inf logits (and an all -inf prefix)
        # contribute nothing; every operand stays finite or -inf so no NaN is ever formed.
        m_safe = tl.where(new_m == neg_inf, 0.0, new_m)
        alpha = tl.exp(m1 - m_safe)
        shift = tl.where(m1 == neg_inf, 0.0, m1 - m_safe)
        a = alpha * (a + shift * s)
        s = alpha * s
        live = x != neg_inf
        d = tl.where(live, x - m_safe, 0.0)
        e = tl.where(live, tl.exp(d), 0.0)
        s += tl.sum(e, axis=0)
        a += tl.sum(e * d, axis=0)
        m2 = tl.maximum(tl.maximum(m2, b2), tl.minimum(m1, b1))
        i1 = tl.where(b1 > m1, bi, i1)
        m1 = new_m
    out = r * n_splits + j
    tl.store(m1_ptr + out, m1)
    tl.store(i1_ptr + out, i1)
    tl.store(m2_ptr + out, m2)
    tl.store(s_ptr + out, s)
    tl.store(a_ptr + out, a)


def _confidence_combine_kernel(
    m1_ptr,
    i1_ptr,
    m2_ptr,
    s_ptr,
    a_ptr,
    token_ptr,
    prob_ptr,
    entropy_ptr,
    margin_ptr,
    n_splits,
    BLOCK_S: tl.constexpr,
):
    """Program r merges the n_splits partial statistics of row r into the four outputs."""
    r = tl.program_id(0)
    offs = tl.arange(0, BLOCK_S)
    ok = offs < n_splits
    p = r * n_splits + offs
    neg_inf = float("-inf")
    m1 = tl.load(m1_ptr + p, mask=ok, other=neg_inf)  # (BLOCK_S,)
    i1 = tl.load(i1_ptr + p, mask=ok, other=0)
    m2 = tl.load(m2_ptr + p, mask=ok, other=neg_inf)
    s = tl.load(s_ptr + p, mask=ok, other=0.0)
    a = tl.load(a_ptr + p, mask=ok, other=0.0)
    m = tl.max(m1, axis=0)
    best = tl.argmax(m1, axis=0)  # first split holding the max: smallest index
    token = tl.sum(tl.where(offs == best, i1, 0), axis=0)
    second = tl.max(tl.maximum(m2, tl.where(offs == best, neg_inf, m1)), axis=0)
    live = m1 != neg_inf
    d = tl.where(live, m1 - m, 0.0)
    w = tl.where(live, tl.exp(d), 0.0)
    total_s = tl.sum(w * s, axis=0)
    total_a = tl.sum(w * (a + d * s), axis=0)
    inv = 1.0 / total_s
    tl.store(token_ptr + r, token.to(tl.int64))
    tl.store(prob_ptr + r, inv)
    tl.store(entropy_ptr + r, tl.log(total_s) - total_a * inv)
    tl.store(margin_ptr + r, (1.0 - tl.exp(second - m)) * inv)


# -- launcher -------------------------------------------------------------------------------------
def _check(logits: torch.Tensor, rows: torch.Tensor | None) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be (rows, vocab), got shape {tuple(logits.shape)}")
    if logits.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"logits must be float16/bfloat16/float32, got {logits.dtype}")
    if logits.shape[1] == 0:
        raise ValueError("logits have an empty vocabulary")
    if logits.stride(1) != 1:
        raise ValueError("logits must be contiguous along the vocabulary (stride(1) == 1)")
    if rows is not None:
        if rows.dim() != 1 or rows.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"rows must be a 1-D int32/int64 tensor, got {rows.dtype} {tuple(rows.shape)}")
        if rows.device != logits.device:
            raise ValueError(f"rows on {rows.device} but logits on {logits.device}")


def pick_splits(n_rows: int, vocab: int, device: torch.device, block_v: int) -> int:
    """Enough vocabulary chunks that rows x chunks covers the GPU about twice."""
    if device.type != "cuda":
        return 1 if vocab <= 4 * block_v else 2
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    wanted = -(-2 * sms // max(n_rows, 1))
    return max(1, min(wanted, -(-vocab // block_v), 64))


def confidence(
    logits: torch.Tensor,
    rows: torch.Tensor | None = None,
    out: Confidence | None = None,
    splits: int | None = None,
    block_v: int | None = None,
) -> Confidence:
    """Kernel version of `confidence_ref` (float32 statistics from logits of any float dtype).

    `out` lets a caller (a CUDA graph, a test poisoning its outputs) supply the four output tensors.
    `rows` must hold valid row indices: checking them would cost a device sync, so it is not done.
    """
    _check(logits, rows)
    n_rows = logits.shape[0] if rows is None else rows.shape[0]
    vocab, device = logits.shape[1], logits.device
    if out is None:
        f32 = dict(dtype=torch.float32, device=device)
        out = Confidence(
            torch.empty(n_rows, dtype=torch.int64, device=device),
            torch.empty(n_rows, **f32),
            torch.empty(n_rows, **f32),
            torch.empty(n_rows, **f32),
        )
    wanted = (torch.int64, torch.float32, torch.float32, torch.float32)
    if any(t.shape != (n_rows,) or t.dtype != dt or t.device != device for t, dt in zip(out, wanted)):
        raise ValueError(f"out must be four ({n_rows},) tensors on {device}: int64 token, float32 prob/entropy/margin")
    if n_rows == 0:
        return out
    block_v = block_v or (4096 if device.type == "cuda" else 256)
    block_v = min(block_v, triton.next_power_of_2(vocab))
    splits = splits or pick_splits(n_rows, vocab, device, block_v)
    chunk = -(-vocab // splits)
    chunk = -(-chunk // block_v) * block_v  # whole blocks per chunk
    splits = -(-vocab // chunk)
    stats = torch.empty(5, n_rows, splits, dtype=torch.float32, device=device)
    index = torch.empty(n_rows, splits, dtype=torch.int32, device=device)
    rows_arg = rows if rows is not None else index  # any pointer; unused without rows
    kernel_for(_confidence_partial_kernel, device.type)[(n_rows, splits)](
        logits,
        rows_arg,
        logits.stride(0),
        vocab,
        chunk,
        stats[0],
        index,
        stats[1],
        stats[2],
        stats[3],
        splits,
        HAS_ROWS=rows is not None,
        BLOCK_V=block_v,
        num_warps=8 if block_v >= 2048 else 4,
    )
    kernel_for(_confidence_combine_kernel, device.type)[(n_rows,)](
        stats[0], index, stats[1], stats[2], stats[3], *out, splits, BLOCK_S=triton.next_power_of_2(splits)
    )
    return out
