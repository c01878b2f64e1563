"""Count device-to-host reads: every Tensor method that hands a tensor's values to Python.

On a GPU each of these waits for the device (a host sync); on the CPU they are free, so the engine's
sync discipline can only be checked there by counting them. `count_host_reads()` patches the methods
for the duration of a `with` block and counts the calls made from the engine's own modules (a read
made by a test, or by torch internally, is not the engine's)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import torch

READ_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy", "nonzero")
INDEXING = ("__getitem__", "__setitem__")  # a boolean-mask index is a hidden nonzero(): a read too


def _bool_mask(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool and p.dim() > 0 for p in parts)


@contextmanager
def count_host_reads(package: str = "sdls_model") -> Iterator[Counter]:
    """Counter of reads by method name, from code in `package` (its file path holds the name)."""
    counts: Counter = Counter()
    originals = {name: getattr(torch.Tensor, name) for name in READ_METHODS}

    originals.update({name: getattr(torch.Tensor, name) for name in INDEXING})

    def ours() -> bool:
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename == __file__:  # a nested counter's wrapper
            frame = frame.f_back
        caller = frame.f_code.co_filename if frame is not None else ""
        return f"/{package}/" in caller and "/sdls_model/train/" not in caller

    def wrap(name, original):
        def counted(self, *args, **kwargs):
            if ours():
                counts[name] += 1
            return original(self, *args, **kwargs)

        return counted

    def wrap_index(name, original):
        def indexed(self, index, *rest):
            if _bool_mask(index) and ours():
                counts[f"{name}[bool mask]"] += 1
            return original(self, index, *rest)

        return indexed

    for name in READ_METHODS:
        setattr(torch.Tensor, name, wrap(name, originals[name]))
    for name in INDEXING:
        setattr(torch.Tensor, name, wrap_index(name, originals[name]))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
