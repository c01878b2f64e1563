"""Block attention: a block of up to 64 new tokens over a long KV cache, GQA, bidirectional in the block.

While decoding, every new token of row b attends to the first `cache_lens[b]` keys of its cache slot
and to the first `new_lens[b]` new tokens (all of them by default), in both directions. At batch 1
that is a few hundred query rows against thousands of keys: too little work for one program per
head to fill a GPU. So the work is split (flash-decoding):

- query rows: the G = H / Hkv query heads sharing a key/value head are packed with the T tokens
  into G*T rows, so each key tile is loaded once per group, not once per head;
- keys: the cache is cut into `splits` chunks, plus one last split for the new tokens' keys; each
  program keeps an online softmax (running max m, sum l, unnormalised output acc) for its chunk;
- a combine kernel merges the splits:  out = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s.

Keys are read straight from the cache slot (optionally through a `slots` index): nothing is
gathered or concatenated, and the cache lengths are device tensors, so the step has no host syncs
and a CUDA graph can replay it for every length up to the `read_len` it was captured with.
"""

from __future__ import annotations

import math

import torch

from .dispatch import kernel_for

try:
    import triton
    import triton.language as tl
except ImportError:  # the reference still works; dispatch never picks the kernel
    triton = tl = None

MAX_BLOCK_TOKENS = 64


# -- reference ------------------------------------------------------------------------------------
def block_attention_ref(
    q, k_cache, v_cache, k_new, v_new, cache_lens, new_lens=None, slots=None, scale=None, compute_dtype=None
):
    """q (B, H, T, D); k_cache/v_cache (slots, Hkv, S, D); k_new/v_new (B, Hkv, T, D);
    cache_lens, new_lens (B,) ints; slots (B,) cache slot of each row (default: row b -> slot b).
    Returns (B, H, T, D) in q's dtype. Rows that see no key at all come out as zeros.

    The arithmetic runs in `compute_dtype` (default q's dtype) the way a fused kernel rounds:
    scores and weighted sums in that dtype, softmax in float32 (or float64 for a float64 reference).
    """
    B, H, T, D = q.shape
    cd = compute_dtype or q.dtype
    rows = torch.arange(B, device=q.device) if slots is None else slots.long()
    kc, vc = k_cache[rows], v_cache[rows]  # (B, Hkv, S, D)
    S = kc.shape[2]
    G = H // kc.shape[1]
    keys = torch.cat([kc, k_new], dim=2).repeat_interleave(G, dim=1).to(cd)  # (B, H, S+T, D)
    values = torch.cat([vc, v_new], dim=2).repeat_interleave(G, dim=1).to(cd)
    if new_lens is None:
        new_lens = torch.full((B,), T, device=q.device)
    valid = torch.cat(
        [
            torch.arange(S, device=q.device) < cache_lens.to(q.device)[:, None],
            torch.arange(T, device=q.device) < new_lens.to(q.device)[:, None],
        ],
        dim=1,
    )  # (B, S+T)
    scale = scale if scale is not None else 1.0 / math.sqrt(D)
    scores = (q.to(cd) @ keys.transpose(-1, -2)) * scale  # (B, H, T, S+T)
    scores = scores.to(torch.promote_types(cd, torch.float32)).masked_fill(~valid[:, None, None, :], float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0).to(cd)
    return (weights @ values).to(q.dtype)


# -- kernels --------------------------------------------------------------------------------------
def _block_attention_split_kernel(
    q_ptr,
    kc_ptr,
    vc_ptr,
    kn_ptr,
    vn_ptr,
    cache_lens_ptr,
    new_lens_ptr,
    slots_ptr,
    m_ptr,
    l_ptr,
    acc_ptr,  # partials: (B, H, T, n_splits+1), same, (..., D)
    sq_b,
    sq_h,
    sq_t,
    skc_s,
    skc_h,
    skc_n,
    svc_s,
    svc_h,
    svc_n,
    skn_b,
    skn_h,
    skn_n,
    svn_b,
    svn_h,
    svn_n,
    H,
    T,
    D,
    chunk,
    scale_log2,
    n_splits,
    G: tl.constexpr,
    HKV: tl.constexpr,
    HAS_SLOTS: tl.constexpr,
    HAS_NEW_LENS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Program (b * HKV + hk, mb, split) handles packed query rows [mb*BLOCK_M, +BLOCK_M) of kv head
    hk against one key chunk: cache chunk `split` for split < n_splits, the new tokens for split == n_splits.
    The split count is a runtime value so that every length bucket shares one compiled kernel."""
    pid = tl.program_id(0)
    b = pid // HKV
    hk = pid % HKV
    split = tl.program_id(2)
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)  # packed (head, token) rows
    row_ok = rows < G * T
    h = hk * G + rows // T  # (BLOCK_M,)
    t = rows % T
    d = tl.arange(0, BLOCK_D)
    d_ok = d < D
    q = tl.load(
        q_ptr + b * sq_b + h[:, None] * sq_h + t[:, None] * sq_t + d[None, :],
        mask=row_ok[:, None] & d_ok[None, :],
        other=0.0,
    )  # (BLOCK_M, BLOCK_D)

    # Both branches give values of the same types (int64 bounds and strides) so the branch compiles.
    if split < n_splits:
        slot = tl.load(slots_ptr + b).to(tl.int64) if HAS_SLOTS else b.to(tl.int64)
        k_base = kc_ptr + slot * skc_s + hk * skc_h
        v_base = vc_ptr + slot * svc_s + hk * svc_h
        sk_n = skc_n.to(tl.int64)
        sv_n = svc_n.to(tl.int64)
        lo = (split * chunk).to(tl.int64)
        hi = tl.minimum(lo + chunk, tl.load(cache_lens_ptr + b).to(tl.int64))
    else:
        k_base = kn_ptr + b * skn_b + hk * skn_h
        v_base = vn_ptr + b * svn_b + hk * svn_h
        sk_n = skn_n.to(tl.int64)
        sv_n = svn_n.to(tl.int64)
        lo = tl.zeros((), tl.int64)
        if HAS_NEW_LENS:
            hi = tl.minimum(tl.load(new_lens_ptr + b).to(tl.int64), T)
        else:
            hi = tl.zeros((), tl.int64) + T

    neg_inf = float("-inf")
    m_i = tl.full((BLOCK_M,), neg_inf, tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        n_ok = n < hi
        kv_mask = n_ok[:, None] & d_ok[None, :]
        k = tl.load(k_base + n[:, None] * sk_n + d[None, :], mask=kv_mask, other=0.0)  # (BLOCK_N, BLOCK_D)
        v = tl.load(v_base + n[:, None] * sv_n + d[None, :], mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale_log2  # (BLOCK_M, BLOCK_N), log2 units
        s = tl.where(n_ok[None, :], s, neg_inf)
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new

    part = ((b * H + h) * T + t) * (n_splits + 1) + split  # (BLOCK_M,)
    tl.store(m_ptr + part, m_i, mask=row_ok)
    tl.store(l_ptr + part, l_i, mask=row_ok)
    tl.store(acc_ptr + part[:, None] * D + d[None, :], acc, mask=row_ok[:, None] & d_ok[None, :])


def _block_attention_combine_kernel(
    m_ptr,
    l_ptr,
    acc_ptr,
    out_ptr,
    so_b,
    so_h,
    so_t,
    H,
    T,
    D,
    n_parts,
    BLOCK_S: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Program r = (b * H + h) * T + t merges the n_parts partial results of one query row."""
    r = tl.program_id(0)
    t = r % T
    h = (r // T) % H
    b = r // (T * H)
    s = tl.arange(0, BLOCK_S)
    s_ok = s < n_parts
    d = tl.arange(0, BLOCK_D)
    d_ok = d < D
    m = tl.load(m_ptr + r * n_parts + s, mask=s_ok, other=float("-inf"))  # (BLOCK_S,)
    l = tl.load(l_ptr + r * n_parts + s, mask=s_ok, other=0.0)
    acc = tl.load(
        acc_ptr + (r * n_parts + s)[:, None] * D + d[None, :], mask=s_ok[:, None] & d_ok[None, :], other=0.0
    )  # (BLOCK_S, BLOCK_D)
    big = tl.max(m, axis=0)
    big = tl.where(big == float("-inf"), 0.0, big)  # no key anywhere: zeros
    w = tl.exp2(m - big)
    total = tl.sum(w * l, axis=0)
    o = tl.sum(w[:, None] * acc, axis=0) / tl.where(total > 0, total, 1.0)  # (BLOCK_D,)
    tl.store(out_ptr + b * so_b + h * so_h + t * so_t + d, o.to(out_ptr.dtype.element_ty), mask=d_ok)


# -- launcher -------------------------------------------------------------------------------------
def _check(q, k_cache, v_cache, k_new, v_new, cache_lens, new_lens, slots, read_len):
    if q.dim() != 4 or k_cache.dim() != 4 or k_new.dim() != 4:
        raise ValueError("q (B, H, T, D), k_cache (slots, Hkv, S, D) and k_new (B, Hkv, T, D) must be 4-D")
    B, H, T, D = q.shape
    n_slots, Hkv, S, Dk = k_cache.shape
    if v_cache.shape != k_cache.shape:
        raise ValueError(f"v_cache {tuple(v_cache.shape)} != k_cache {tuple(k_cache.shape)}")
    if k_new.shape != (B, Hkv, T, D) or v_new.shape != k_new.shape:
        raise ValueError(f"k_new/v_new must be {(B, Hkv, T, D)}, got {tuple(k_new.shape)}/{tuple(v_new.shape)}")
    if Dk != D:
        raise ValueError(f"head dim of q ({D}) and cache ({Dk}) differ")
    if H % Hkv:
        raise ValueError(f"{H} query heads are not a multiple of {Hkv} key/value heads")
    if not 1 <= T <= MAX_BLOCK_TOKENS:
        raise ValueError(f"block of {T} tokens; the kernel takes 1..{MAX_BLOCK_TOKENS}")
    tensors = dict(q=q, k_cache=k_cache, v_cache=v_cache, k_new=k_new, v_new=v_new)
    for name, x in tensors.items():
        if x.dtype != q.dtype:
            raise TypeError(f"{name} is {x.dtype} but q is {q.dtype}")
        if x.stride(-1) != 1:
            raise ValueError(f"{name} must be contiguous along the head dim (stride(-1) == 1)")
        if x.device != q.device:
            raise ValueError(f"{name} on {x.device} but q on {q.device}")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"attention inputs must be float16/bfloat16/float32, got {q.dtype}")
    for name, x, n in (("cache_lens", cache_lens, B), ("new_lens", new_lens, B), ("slots", slots, B)):
        if x is None:
            continue
        if x.shape != (n,) or x.dtype not in (torch.int32, torch.int64) or x.device != q.device:
            raise ValueError(
                f"{name} must be an int32/int64 ({n},) tensor on {q.device}, "
                f"got {x.dtype} {tuple(x.shape)} on {x.device}"
            )
    if slots is None and n_slots < B:
        raise ValueError(f"{B} rows but the cache has {n_slots} slots; pass slots")
    if not 0 <= read_len <= S:
        raise ValueError(f"read_len {read_len} outside the cache length 0..{S}")


def pick_splits(work_programs: int, read_len: int, device: torch.device, block_n: int) -> int:
    """Cache chunks per row: enough programs to cover the GPU about twice, at least BLOCK_N keys each."""
    if read_len == 0:
        return 0
    max_splits = -(-read_len // block_n)
    if device.type != "cuda":
        return min(2, max_splits)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(max_splits, -(-2 * sms // work_programs), 63))  # + the new-token part <= 64


def block_attention(
    q,
    k_cache,
    v_cache,
    k_new,
    v_new,
    cache_lens,
    new_lens=None,
    slots=None,
    read_len: int | None = None,
    scale: float | None = None,
    out=None,
    splits: int | None = None,
    block_m: int | None = None,
    block_n: int | None = None,
):
    """Kernel version of `block_attention_ref`; returns (B, H, T, D) (a view of a (B, T, H, D) buffer,
    so `.transpose(1, 2).reshape(B, T, H * D)` is free).

    read_len: host-side bound on every cache_lens[b] (the length bucket); keys past it are never
    read, so the kernel's grid depends only on it. Default: the whole cache. cache_lens beyond
    read_len are clamped to it.
    out: optional (B, H, T, D) output tensor (any layout with stride(-1) == 1).
    """
    read_len = k_cache.shape[2] if read_len is None else read_len
    _check(q, k_cache, v_cache, k_new, v_new, cache_lens, new_lens, slots, read_len)
    B, H, T, D = q.shape
    Hkv = k_cache.shape[1]
    G = H // Hkv
    device = q.device
    if out is None:
        out = torch.empty(B, T, H, D, dtype=q.dtype, device=device).transpose(1, 2)
    elif out.shape != q.shape or out.stride(-1) != 1 or out.dtype != q.dtype:
        raise ValueError(f"out must be {q.dtype} {tuple(q.shape)} with stride(-1) == 1")
    block_d = triton.next_power_of_2(D)
    block_m = block_m or min(64, max(16, triton.next_power_of_2(G * T)))
    block_n = block_n or (64 if block_d <= 128 else 32)
    m_blocks = -(-(G * T) // block_m)
    ns = splits if splits is not None else pick_splits(B * Hkv * m_blocks, read_len, device, block_n)
    ns = min(ns, -(-read_len // block_n)) if read_len else 0
    per_split = -(-read_len // max(ns, 1))  # ceil division, twice: keys per split, rounded up to tiles
    chunk = -(-per_split // block_n) * block_n if ns else block_n
    ns = -(-read_len // chunk) if read_len else 0
    lens = torch.clamp(cache_lens, max=read_len).to(torch.int32)  # (B,)

    m_part = torch.empty(B, H, T, ns + 1, dtype=torch.float32, device=device)
    l_part = torch.empty_like(m_part)
    acc_part = torch.empty(B, H, T, ns + 1, D, dtype=torch.float32, device=device)
    precision = "ieee" if q.dtype == torch.float32 else "tf32"
    kernel_for(_block_attention_split_kernel, device.type)[(B * Hkv, m_blocks, ns + 1)](
        q,
        k_cache,
        v_cache,
        k_new,
        v_new,
        lens,
        new_lens.to(torch.int32) if new_lens is not None else lens,
        slots if slots is not None else lens,
        m_part,
        l_part,
        acc_part,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        *k_cache.stride()[:3],
        *v_cache.stride()[:3],
        *k_new.stride()[:3],
        *v_new.stride()[:3],
        H,
        T,
        D,
        chunk,
        (scale if scale is not None else 1.0 / math.sqrt(D)) * math.log2(math.e),
        ns,
        G=G,
        HKV=Hkv,
        HAS_SLOTS=slots is not None,
        HAS_NEW_LENS=new_lens is not None,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_D=block_d,
        PRECISION=precision,
        num_warps=4,
        num_stages=2,
    )
    kernel_for(_block_attention_combine_kernel, device.type)[(B * H * T,)](
        m_part,
        l_part,
        acc_part,
        out,
        out.stride(0),
        out.stride(1),
        out.stride(2),
        H,
        T,
        D,
        ns + 1,
        BLOCK_S=triton.next_power_of_2(ns + 1),
        BLOCK_D=block_d,
    )
    return out
