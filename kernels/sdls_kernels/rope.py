"""Rotary position embedding applied to the query and key heads of a token in one launch.

The model's `apply_rope` ("rotate half" layout) costs a negate, a concatenation, two multiplies and
an add for each of q and k, plus the cos/sin tables: about a dozen small kernels per layer, which
is what a decode step at batch 1 is made of. Here one program rotates every head of one token
in place, reading q and k straight out of the fused qkv projection output (any row stride), with
angles from the positions and the model's own float32 inverse frequencies:

    angle_i = position * inv_freq_i;  out[i] = x[i] cos - x[i + D/2] sin,  out[i + D/2] = x[i + D/2] cos + x[i] sin
"""

from __future__ import annotations

import torch

from .dispatch import kernel_for

try:
    import triton
    import triton.language as tl
except ImportError:  # the reference still works; dispatch never picks the kernel
    triton = tl = None


def inverse_frequencies(head_dim: int, theta: float, device=None) -> torch.Tensor:
    """(head_dim / 2,) float32, computed exactly as the model computes them."""
    exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    return 1.0 / (theta**exponents)


# -- reference ------------------------------------------------------------------------------------
def rope_ref(
    x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, compute_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """x (B, T, heads, D), positions (B, T) -> rotated x (new tensor, x's dtype).

    Computed like the model: float32 angles, cos/sin and arithmetic in `compute_dtype` (default x's).
    """
    cd = compute_dtype or x.dtype
    angles = positions.float()[..., None] * inv_freq  # (B, T, D/2)
    cos, sin = angles.cos().to(cd)[:, :, None], angles.sin().to(cd)[:, :, None]  # (B, T, 1, D/2)
    xc = x.to(cd)
    lo, hi = xc.chunk(2, dim=-1)
    return torch.cat([lo * cos - hi * sin, hi * cos + lo * sin], dim=-1).to(x.dtype)


# -- kernel ---------------------------------------------------------------------------------------
def _rope_kernel(
    q_ptr,
    k_ptr,
    pos_ptr,
    inv_freq_ptr,
    sq_b,
    sq_t,
    sq_h,
    sk_b,
    sk_t,
    sk_h,
    sp_b,
    sp_t,
    T,
    HQ,
    HK,
    HALF,
    BLOCK_H: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
):
    """Program (b * T + t) rotates the HQ query heads and HK key heads of token t of row b in place."""
    pid = tl.program_id(0)
    b = (pid // T).to(tl.int64)
    t = (pid % T).to(tl.int64)
    i = tl.arange(0, BLOCK_HALF)
    heads = tl.arange(0, BLOCK_H)
    pos = tl.load(pos_ptr + b * sp_b + t * sp_t).to(tl.float32)
    angle = pos * tl.load(inv_freq_ptr + i, mask=i < HALF, other=0.0)  # (BLOCK_HALF,)
    cos = tl.cos(angle)[None, :]
    sin = tl.sin(angle)[None, :]
    for which in tl.static_range(2):
        if which == 0:
            base, sh, n_heads = q_ptr + b * sq_b + t * sq_t, sq_h, HQ
        else:
            base, sh, n_heads = k_ptr + b * sk_b + t * sk_t, sk_h, HK
        ok = (heads < n_heads)[:, None] & (i < HALF)[None, :]
        lo_ptr = base + heads[:, None] * sh + i[None, :]  # (BLOCK_H, BLOCK_HALF)
        lo = tl.load(lo_ptr, mask=ok, other=0.0)
        hi = tl.load(lo_ptr + HALF, mask=ok, other=0.0)
        lo32, hi32 = lo.to(tl.float32), hi.to(tl.float32)
        tl.store(lo_ptr, (lo32 * cos - hi32 * sin).to(lo.dtype), mask=ok)
        tl.store(lo_ptr + HALF, (hi32 * cos + lo32 * sin).to(lo.dtype), mask=ok)


# -- launcher -------------------------------------------------------------------------------------
def rope_(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> None:
    """Rotate q (B, T, Hq, D) and k (B, T, Hk, D) in place (views into a qkv buffer are fine)."""
    if q.dim() != 4 or k.dim() != 4 or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"q (B, T, Hq, D) and k (B, T, Hk, D) must agree, got {tuple(q.shape)} {tuple(k.shape)}")
    B, T, Hq, D = q.shape
    if D % 2:
        raise ValueError(f"head dim {D} must be even")
    if positions.shape != (B, T):
        raise ValueError(f"positions must be {(B, T)}, got {tuple(positions.shape)}")
    if inv_freq.shape != (D // 2,) or inv_freq.dtype != torch.float32 or inv_freq.stride(0) != 1:
        raise ValueError(f"inv_freq must be a contiguous float32 ({D // 2},) vector")
    if q.dtype != k.dtype or q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"q and k must share a float16/bfloat16/float32 dtype, got {q.dtype}, {k.dtype}")
    if q.stride(-1) != 1 or k.stride(-1) != 1:
        raise ValueError("q and k must be contiguous along the head dim")
    for name, t in (("k", k), ("positions", positions), ("inv_freq", inv_freq)):
        if t.device != q.device:
            raise ValueError(f"{name} on {t.device} but q on {q.device}")
    if B * T == 0:
        return
    Hk = k.shape[2]
    kernel_for(_rope_kernel, q.device.type)[(B * T,)](
        q,
        k,
        positions,
        inv_freq,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        positions.stride(0),
        positions.stride(1),
        T,
        Hq,
        Hk,
        D // 2,
        BLOCK_H=triton.next_power_of_2(max(Hq, Hk)),
        BLOCK_HALF=triton.next_power_of_2(D // 2),
        num_warps=4,
    )
