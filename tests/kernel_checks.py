"""Shared by the kernel tests: where the kernels run, random inputs, and the tolerance rule.

tests/conftest.py has already chosen Triton's mode (its interpreter on a machine without CUDA,
where nothing compiled can be poisoned; compiled kernels on a CUDA machine, where the same checks
run on the GPU) and gives each test a seeded generator (the `gen` and `seed` fixtures).
"""

from __future__ import annotations

import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# The interpreter computes bf16 dots wrongly and truncates float32 -> bf16 casts (the GPU rounds
# to nearest), so bf16 is checked on the GPU only; fp32/fp16 run everywhere.
DTYPES = (torch.float32, torch.float16) + ((torch.bfloat16,) if DEVICE.type == "cuda" else ())


def randn(gen: torch.Generator, *shape, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, generator=gen) * scale).to(dtype).to(DEVICE)


def poisoned(*shape, dtype) -> torch.Tensor:
    """An output buffer full of NaN (or -1 for integers) so anything the kernel skips shows up."""
    if dtype.is_floating_point:
        return torch.full(shape, float("nan"), dtype=dtype, device=DEVICE)
    return torch.full(shape, -1, dtype=dtype, device=DEVICE)


def max_error(got: torch.Tensor, exact: torch.Tensor) -> float:
    """Largest absolute error in float64; NaN anywhere in `got` makes it NaN (and fails the rule)."""
    diff = (got.detach().cpu().double() - exact.detach().cpu().double()).abs()
    return float("nan") if torch.isnan(diff).any() else float(diff.max()) if diff.numel() else 0.0


def check_rule(what: str, kernel_out, torch_out, exact, atol: float, seed: int, factor: float = 2.0) -> None:
    """flash-attention's rule: the kernel's error against an fp64 reference is at most `factor`
    times torch's own error at the same precision, plus a small absolute floor."""
    k_err, t_err = max_error(kernel_out, exact), max_error(torch_out, exact)
    assert k_err <= factor * t_err + atol, (
        f"{what}: kernel error {k_err:.3g} > {factor} x torch error {t_err:.3g} + {atol:g} (seed {seed})"
    )
