"""Fused residual add + RMSNorm: h = x + residual; y = weight * rmsnorm(h), one read of each row.

A transformer block ends with `x + mlp(...)` and the next one starts with `norm(x)`; in eager
PyTorch that is an add, a float32 upcast, a square, a mean, an rsqrt, two multiplies and casts:
each a pass over the hidden states and, at decode batch sizes, each a kernel launch. The kernel
does the add and the norm in one pass and returns both the normalised rows and the new residual.
It rounds exactly where the model's RMSNorm does (sum in the input dtype, normalised value cast
to the input dtype before the weight multiply), so kernel and model agree to the last bit or two.
"""

from __future__ import annotations

import torch

from .dispatch import kernel_for

try:
    import triton
    import triton.language as tl
except ImportError:  # the reference still works; dispatch never picks the kernel
    triton = tl = None


# -- reference ------------------------------------------------------------------------------------
def add_rmsnorm_ref(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float,
    compute_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x, residual (..., D); weight (D,) -> (y, h) with h = x + residual (x when residual is None)."""
    h = x if residual is None else x + residual
    hf = h.to(compute_dtype)
    normed = (hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + eps)).to(h.dtype)
    return weight * normed, h


# -- kernel ---------------------------------------------------------------------------------------
def _add_rmsnorm_kernel(
    x_ptr,
    r_ptr,
    w_ptr,
    y_ptr,
    h_ptr,
    sx,
    sr,
    sy,
    sh,
    D,
    eps,
    HAS_RESIDUAL: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Program i normalises row i."""
    i = tl.program_id(0).to(tl.int64)
    d = tl.arange(0, BLOCK_D)
    ok = d < D
    x = tl.load(x_ptr + i * sx + d, mask=ok, other=0.0)
    if HAS_RESIDUAL:
        h = (x.to(tl.float32) + tl.load(r_ptr + i * sr + d, mask=ok, other=0.0).to(tl.float32)).to(x.dtype)
        tl.store(h_ptr + i * sh + d, h, mask=ok)
    else:
        h = x
    hf = h.to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(hf * hf, axis=0) / D + eps)
    normed = (hf * rstd).to(x.dtype).to(tl.float32)
    w = tl.load(w_ptr + d, mask=ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + i * sy + d, (w * normed).to(y_ptr.dtype.element_ty), mask=ok)


# -- launcher -------------------------------------------------------------------------------------
def _rows(t: torch.Tensor, name: str, D: int) -> torch.Tensor:
    """(..., D) -> a (N, D) view with unit stride along D (no copy)."""
    if t.shape[-1] != D or t.stride(-1) != 1:
        raise ValueError(f"{name} must end in a unit-stride dim of size {D}, got shape {tuple(t.shape)}")
    try:
        return t.view(-1, D)
    except RuntimeError as exc:
        raise ValueError(f"{name} rows are not evenly strided (make it contiguous): {exc}") from None


def add_rmsnorm(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float,
    out: torch.Tensor | None = None,
    residual_out: torch.Tensor | None = None,
):
    """Kernel version of `add_rmsnorm_ref`. Returns (y, h); y has torch's dtype for weight * x.

    Without a residual h is x itself (nothing is written). `out`/`residual_out` may be given
    (CUDA graphs, poisoned tests); `residual_out` may alias `residual` for an in-place update.
    """
    D = x.shape[-1]
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"x must be float16/bfloat16/float32, got {x.dtype}")
    if weight.shape != (D,) or weight.stride(0) != 1:
        raise ValueError(f"weight must be a contiguous ({D},) vector, got {tuple(weight.shape)}")
    if residual is not None and (residual.shape != x.shape or residual.dtype != x.dtype):
        raise ValueError(f"residual {residual.dtype} {tuple(residual.shape)} must match x {x.dtype} {tuple(x.shape)}")
    for name, t in (("residual", residual), ("weight", weight)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} on {t.device} but x on {x.device}")
    y_dtype = torch.result_type(weight, x)
    y = torch.empty(x.shape, dtype=y_dtype, device=x.device) if out is None else out
    if y.shape != x.shape or y.dtype != y_dtype:
        raise ValueError(f"out must be {y_dtype} {tuple(x.shape)}, got {y.dtype} {tuple(y.shape)}")
    if residual is None:
        h = x
    else:
        h = torch.empty_like(x) if residual_out is None else residual_out
        if h.shape != x.shape or h.dtype != x.dtype:
            raise ValueError(f"residual_out must be {x.dtype} {tuple(x.shape)}")
    x2, y2, h2 = _rows(x, "x", D), _rows(y, "out", D), _rows(h, "residual_out", D)
    r2 = _rows(residual, "residual", D) if residual is not None else x2
    if x2.shape[0] == 0:
        return y, h
    block_d = triton.next_power_of_2(D)
    kernel_for(_add_rmsnorm_kernel, x.device.type)[(x2.shape[0],)](
        x2,
        r2,
        weight,
        y2,
        h2,
        x2.stride(0),
        r2.stride(0),
        y2.stride(0),
        h2.stride(0),
        D,
        eps,
        HAS_RESIDUAL=residual is not None,
        BLOCK_D=block_d,
        num_warps=max(1, min(16, block_d // 256)),
    )
    return y, h
