"""sdls_kernels: Triton kernels for the decoding hot path, each beside its torch reference.

Imported as `sdls_kernels` (the folder is kernels/). Never imports `sdls` or `sdls_model`.
"""
