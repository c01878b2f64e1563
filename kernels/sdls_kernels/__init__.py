"""sdls_kernels: Triton kernels for the decoding hot path, each beside its torch reference.

Lives in kernels/sdls_kernels/. Never imports `sdls` or `sdls_model`.
"""

if __name__ != "sdls_kernels":  # e.g. `kernels.sdls_kernels` from the repository root: a second copy
    raise ImportError(f"import sdls_kernels, not {__name__}: one file, one module name")
