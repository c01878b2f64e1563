"""Which implementation runs: the Triton kernels or their torch references.

`SDLS_KERNELS=auto|triton|torch` (default auto) picks; `force_kernels(...)` overrides it in-process.
- auto:   kernels on CUDA devices when Triton imports, references everywhere else;
- triton: kernels on every device (on the CPU they run in Triton's interpreter: slow, for tests);
- torch:  references everywhere.

Each kernel file keeps its kernel as a plain function and gets the runnable form from `kernel_for`
(`triton.jit` applied once per function). On the CPU that form is Triton's interpreter, which Triton
only provides when TRITON_INTERPRET=1 was set before `triton` was first imported. So on a machine
without CUDA — where compiled Triton cannot run at all — importing this module (which every kernel
file does before importing triton) sets TRITON_INTERPRET=1 unless the variable is already set or
triton is already imported. With CUDA present nothing is changed: kernels always compile there.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator

import torch

if "triton" not in sys.modules and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

MODES = ("auto", "triton", "torch")
_forced: str | None = None


def _mode() -> str:
    mode = _forced or os.environ.get("SDLS_KERNELS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"SDLS_KERNELS={mode!r} is not one of {', '.join(MODES)}")
    return mode


@functools.cache
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def use_kernels(device: torch.device | str) -> bool:
    """True when the Triton kernels (not the torch references) should run on `device`."""
    mode = _mode()
    if mode == "torch":
        return False
    if mode == "triton":
        if not triton_available():
            raise RuntimeError("SDLS_KERNELS=triton but Triton is not installed")
        return True
    return torch.device(device).type == "cuda" and triton_available()


def set_kernels(mode: str | None) -> None:
    """Force a mode for this process ("auto", "triton", "torch"); None returns to SDLS_KERNELS."""
    global _forced
    if mode is not None and mode not in MODES:
        raise ValueError(f"kernel mode {mode!r} is not one of {', '.join(MODES)}")
    _forced = mode


@contextlib.contextmanager
def force_kernels(mode: str) -> Iterator[None]:
    """`with force_kernels("torch"): ...` runs the block with that mode, then restores the previous one."""
    previous = _forced
    set_kernels(mode)
    try:
        yield
    finally:
        set_kernels(previous)


@functools.cache  # fixed once triton is imported; cached because every launch asks
def interpreter_active() -> bool:
    """True when Triton was imported in interpreter mode (its own library functions are interpreted)."""
    if not triton_available():
        return False
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.max, InterpretedFunction)


@functools.cache
def _jit(fn: Callable):
    import triton

    return triton.jit(fn)


def kernel_for(fn: Callable, device_type: str):
    """The runnable Triton kernel for plain function `fn` on tensors of `device_type`."""
    if not triton_available():
        raise RuntimeError(f"{fn.__name__} needs Triton, which is not installed")
    if device_type not in ("cuda", "cpu"):
        raise RuntimeError(f"no Triton kernel for device type {device_type!r}")
    if (device_type == "cpu") != interpreter_active():
        raise RuntimeError(
            f"{fn.__name__} on {device_type} tensors: Triton runs CPU tensors only in its interpreter and "
            "CUDA tensors only compiled; set TRITON_INTERPRET=1 before importing triton for CPU runs, "
            "and leave it unset for GPU runs"
        )
    return _jit(fn)
