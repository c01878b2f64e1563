"""Hand the C heap's freed pages back to the system once a checkpoint is loaded.

Loading makes and drops large temporaries (dequantised GGUF tensors, float32 weights before the
cast to bfloat16). glibc keeps freed chunks below its mmap threshold in the heap, so the process
keeps their pages: about 640 MB for the shipped adapted model, measured. `malloc_trim(0)` returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def release_freed_memory() -> bool:
    """True when the C library gave memory back; False where there is no malloc_trim (not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return False
