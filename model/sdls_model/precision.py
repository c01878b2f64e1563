"""Which floating-point type the engine computes in.

"auto" is bfloat16 on a GPU, and on a CPU only where the CPU multiplies bfloat16 natively
(AVX512-BF16 or AMX: ~2.5x faster matmuls than float32 here); elsewhere bfloat16 would be emulated
and slower than float32, so auto keeps float32. torch is imported lazily: the worker reads the
choices before it decides to load anything.
"""

from __future__ import annotations

DTYPE_NAMES = ("float32", "bfloat16", "float16")
DTYPE_CHOICES = ("auto", *DTYPE_NAMES)


def add_dtype_argument(parser, default: str | None = "auto") -> None:
    """The `--dtype` option every command that loads a model takes (None: leave it to settings)."""
    parser.add_argument(
        "--dtype",
        default=default,
        choices=DTYPE_CHOICES,
        help="auto (default): bfloat16 on a GPU or a CPU with native bfloat16, else float32",
    )


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX. (oneDNN's own check also accepts plain AVX512, where bfloat16 is emulated.)"""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch without these probes: do not guess
        return False


def resolve_dtype(name, device):
    """A dtype name ("auto", "float32", "bfloat16", "float16"), a torch dtype or None (= "auto")
    -> the torch dtype to compute in on `device`."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    name = name or "auto"
    if name == "auto":
        if torch.device(device).type == "cuda":
            return torch.bfloat16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if name not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPE_CHOICES)}")
    return getattr(torch, name)
