"""SwiGLU activation on a fused gate/up projection: out = silu(gate) * up, one pass.

With the gate and up projections fused into one matmul (model/sdls_model/fast_path.py), the MLP's activation
reads one (rows, 2F) buffer and writes (rows, F). In torch that is a chunk, a silu and a multiply
(two kernels and an intermediate); here it is one kernel. Rounding follows torch: silu(gate) is
rounded to the input dtype before the multiply, as `F.silu(gate) * up` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dispatch import kernel_for

try:
    import triton
    import triton.language as tl
except ImportError:  # the reference still works; dispatch never picks the kernel
    triton = tl = None


# -- reference ------------------------------------------------------------------------------------
def swiglu_ref(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up (..., 2F): gate then up -> (..., F)."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


# -- kernel ---------------------------------------------------------------------------------------
def _swiglu_kernel(x_ptr, out_ptr, sx, so, F_, BLOCK: tl.constexpr):
    """Program (row, j) handles columns [j * BLOCK, (j + 1) * BLOCK) of one row."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = cols < F_
    gate = tl.load(x_ptr + row * sx + cols, mask=ok, other=0.0)
    up = tl.load(x_ptr + row * sx + F_ + cols, mask=ok, other=0.0)
    g = gate.to(tl.float32)
    act = (g / (1.0 + tl.exp(-g))).to(gate.dtype)
    tl.store(out_ptr + row * so + cols, (act.to(tl.float32) * up.to(tl.float32)).to(gate.dtype), mask=ok)


# -- launcher -------------------------------------------------------------------------------------
def swiglu(gate_up: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel version of `swiglu_ref`."""
    if gate_up.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"gate_up must be float16/bfloat16/float32, got {gate_up.dtype}")
    two_f = gate_up.shape[-1]
    if two_f % 2 or gate_up.stride(-1) != 1:
        raise ValueError(f"gate_up must end in an even, unit-stride dim, got shape {tuple(gate_up.shape)}")
    f = two_f // 2
    rows = gate_up.reshape(-1, two_f)
    if rows.data_ptr() != gate_up.data_ptr():
        raise ValueError("gate_up rows are not evenly strided (make it contiguous)")
    if out is None:
        out = torch.empty(*gate_up.shape[:-1], f, dtype=gate_up.dtype, device=gate_up.device)
    if out.shape != (*gate_up.shape[:-1], f) or out.dtype != gate_up.dtype or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {gate_up.dtype} {(*gate_up.shape[:-1], f)} tensor")
    if rows.shape[0] == 0 or f == 0:
        return out
    block = min(1024, triton.next_power_of_2(f))
    kernel_for(_swiglu_kernel, gate_up.device.type)[(rows.shape[0], triton.cdiv(f, block))](
        rows, out, rows.stride(0), f, f, BLOCK=block, num_warps=4
    )  # out is contiguous: row stride f
    return out
