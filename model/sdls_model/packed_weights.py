"""Weights packed for the CPU's own matmul kernels: FBGEMM's float16 where bfloat16 is not native,
oneDNN's bfloat16 layout where it is.

A decoding step multiplies a handful of rows by every weight matrix, so on a CPU its cost is
reading the weights. Where the CPU has no native bfloat16 (AVX2 only: most laptops, and the
AMD EPYC this was measured on), the engine computes in float32 and torch's float32 matmul reads
4-byte weights at 4-11 GB/s for such skinny products. FBGEMM's float16-weight matmul (the
kernel behind torch's dynamic float16 quantisation) stores each matrix as 2-byte values in its
own packed layout, widens them in registers and accumulates in float32: half the bytes, read
at 11-19 GB/s, about 4x less time per step, with a relative error of ~2e-4 (bfloat16 weights
are ~4e-3). Activations, norms and attention stay float32; the KV cache beside packed weights is
stored as bfloat16 (`cache_dtype`): it is the largest thing a worker holds (1.14 GB of float32 for
the shipped model's 16 slots), and its keys and values are widened as they are read, so attention
computes in float32 over values rounded as a bfloat16 engine's are.

`pack_model(model)` swaps every `nn.Linear` of a float32 Transformer for a `PackedLinear`
(inference only: no gradients, no `.weight`) and its embedding table for a `HalfEmbedding` (float16
rows, widened as they are looked up: a step reads a handful of rows, so the table is pure memory).
The float32 matrices and table are freed; a tied output projection gets a packed copy of its own.

Where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX) the engine computes in bfloat16, and
torch's plain bfloat16 linear hands oneDNN's matmul the matrix in its plain layout, which it repacks
into blocks as it multiplies, in every call (ONEDNN_VERBOSE: a brgemm matmul on the `ba` layout,
against an inner product on `AB16b64a2b` made once): for a handful of rows that costs about as much
as the product (every
matrix of the 0.5B shape on an AVX512-BF16 EPYC, 2 threads: 76.4 ms for 5 rows, 35.9 ms with the weights
reordered once, against a 28.2 ms floor at the copy bandwidth). `pack_bfloat16_linears` does that
reorder once (`BFloat16PackedLinear`, oneDNN's own packed-linear ops, the ones torch.compile's CPU
freezing emits); products are bit-identical to the plain bfloat16 ones, the embedding table stays
as it is.

`resolve_weights` decides per device: SDLS_CPU_WEIGHTS=auto|plain|float16|bfloat16 (default auto).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_CHOICES = ("auto", "plain", "float16", "bfloat16")
PACKED_CHOICES = ("float16", "bfloat16")  # the ways that replace the model's matrices (decode only)
WEIGHT_LABELS = {"plain": "plain", "float16": "float16 packed (FBGEMM)", "bfloat16": "bfloat16 packed (oneDNN)"}
# FBGEMM's float16 packing pads each matrix's input dimension to a multiple of its row block and
# its output dimension to one of its column block (16 with AVX2). Measured by the resident memory a
# pack adds (AVX2 EPYC): 49156 x 576 takes 96.0 MB, not 54.0 (576 -> 1024); 896 x 4864 8.75 MB
# (4864 -> 5120); 100 x 4096 0.875 MB (100 -> 112). Products skip the padding (a 576-wide matrix
# multiplies as fast as a 512-wide one), so it costs memory, not time.
FBGEMM_K_BLOCK, FBGEMM_N_BLOCK = 512, 16
PACKED_ELEMENT_SIZE = torch.finfo(torch.float16).bits // 8  # bytes of a packed weight or table value


@functools.cache
def fbgemm_float16_available() -> bool:
    """The packed float16 matmul exists in this torch build and runs on this CPU."""
    try:
        w, x = torch.ones(8, 8), torch.ones(2, 8)
        y = torch.ops.quantized.linear_dynamic_fp16(x, torch.ops.quantized.linear_prepack_fp16(w, None))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return bool(torch.allclose(y, torch.full((2, 8), 8.0)))


@functools.cache
def onednn_bfloat16_available() -> bool:
    """oneDNN's packed bfloat16 linear exists in this torch build and this CPU multiplies bfloat16
    natively (elsewhere oneDNN would emulate it, slower than float32)."""
    from .precision import cpu_has_native_bf16

    if not (cpu_has_native_bf16() and torch.backends.mkldnn.is_available()):
        return False
    try:
        w, x = torch.ones(8, 8, dtype=torch.bfloat16), torch.ones(2, 8, dtype=torch.bfloat16)
        y = torch.ops.mkldnn._linear_pointwise(x, torch.ops.mkldnn._reorder_linear_weight(w, 2), None, "none", [], "")
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return bool(torch.equal(y, torch.full((2, 8), 8.0, dtype=torch.bfloat16)))


def resolve_weights(name: str | None, device: torch.device | str, dtype: torch.dtype) -> str:
    """ "plain" (weights in the compute dtype), "float16" (FBGEMM-packed) or "bfloat16" (oneDNN-packed)
    for an engine on `device` in `dtype`.

    auto: float16 on a CPU computing in float32 when FBGEMM can run, bfloat16 on a CPU computing in
    bfloat16 natively, plain everywhere else (a GPU). None reads SDLS_CPU_WEIGHTS."""
    name = (name or os.environ.get("SDLS_CPU_WEIGHTS", "auto")).strip().lower() or "auto"
    if name not in WEIGHT_CHOICES:
        raise ValueError(f"weights {name!r} is not one of {', '.join(WEIGHT_CHOICES)} (SDLS_CPU_WEIGHTS)")
    on_cpu = torch.device(device).type == "cpu"
    on_cpu_f32, on_cpu_bf16 = on_cpu and dtype == torch.float32, on_cpu and dtype == torch.bfloat16
    if name == "float16" and not on_cpu_f32:
        raise ValueError(f"float16 packed weights need a CPU computing in float32, not {device} in {dtype}")
    if name == "float16" and not fbgemm_float16_available():
        raise ValueError("float16 packed weights need FBGEMM, which this torch build or CPU lacks")
    if name == "bfloat16" and not on_cpu_bf16:
        raise ValueError(f"bfloat16 packed weights need a CPU computing in bfloat16, not {device} in {dtype}")
    if name == "bfloat16" and not onednn_bfloat16_available():
        raise ValueError("bfloat16 packed weights need oneDNN and a CPU with native bfloat16, which this one lacks")
    if name == "auto":
        if on_cpu_f32 and fbgemm_float16_available():
            return "float16"
        return "bfloat16" if on_cpu_bf16 and onednn_bfloat16_available() else "plain"
    return name


def cache_dtype(weights: str, dtype: torch.dtype) -> torch.dtype:
    """The KV cache's storage dtype for an engine computing in `dtype` with `weights` resolved."""
    return torch.bfloat16 if weights == "float16" else dtype


class PackedLinear(nn.Module):
    """y = x W^T + b with W held as FBGEMM's packed float16; x and y float32, any leading shape."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        if linear.weight.dtype != torch.float32 or linear.weight.device.type != "cpu":
            raise ValueError(
                f"PackedLinear packs float32 CPU weights, not {linear.weight.dtype} on {linear.weight.device}"
            )
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with torch.no_grad():
            bias = None if linear.bias is None else linear.bias.detach().contiguous()
            self.has_bias = bias is not None
            self.packed = torch.ops.quantized.linear_prepack_fp16(linear.weight.detach().contiguous(), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).float()
        return torch.ops.quantized.linear_dynamic_fp16(flat, self.packed).view(*x.shape[:-1], self.out_features)

    def nbytes(self) -> int:
        """The packed matrix's size, its layout's padding included, and a float32 bias."""
        return packed_matrix_bytes(self.out_features, self.in_features) + (
            4 * self.out_features if self.has_bias else 0
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, float16 packed"


class BFloat16PackedLinear(nn.Module):
    """y = x W^T + b with W held in oneDNN's blocked bfloat16 layout; x and y bfloat16, any leading
    shape. The same products as the plain bfloat16 linear, without its per-call reorder."""

    ROWS_HINT = 8  # the rows oneDNN picks the layout for; any count runs (hints 1-1024 timed alike at 5-1040 rows)

    def __init__(self, linear: nn.Linear):
        super().__init__()
        if linear.weight.dtype != torch.bfloat16 or linear.weight.device.type != "cpu":
            raise ValueError(
                f"BFloat16PackedLinear packs bfloat16 CPU weights, not {linear.weight.dtype} on {linear.weight.device}"
            )
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with torch.no_grad():
            self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach().contiguous(), self.ROWS_HINT)
            self.bias = None if linear.bias is None else linear.bias.detach().contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.bias, "none", [], "")
        return y.view(*x.shape[:-1], self.out_features)

    def nbytes(self) -> int:
        """The packed matrix (oneDNN's layout holds about the plain size: 272.27 MB for 151936 x 896,
        measured by resident memory) and the bias."""
        return 2 * self.out_features * self.in_features + (0 if self.bias is None else 2 * self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bfloat16 packed"


class HalfEmbedding(nn.Module):
    """An embedding table held as float16; the rows looked up come out float32."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim
        self.register_buffer("table", embedding.weight.detach().to(torch.float16).contiguous(), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.table).float()

    def nbytes(self) -> int:
        return self.table.numel() * self.table.element_size()

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, float16"


def _replace(model: nn.Module, kind: type, make, threads: int = 1) -> int:
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, kind)
    ]
    with ThreadPoolExecutor(max(1, threads)) as pool:  # torch ops let go of the GIL while they run
        made = list(pool.map(lambda target: make(target[2]), targets))
    for (parent, name, _child), new in zip(targets, made):
        setattr(parent, name, new)
    return len(targets)


def pack_linears(model: nn.Module) -> int:
    """Replace every nn.Linear under `model` by a PackedLinear, in place; returns how many. FBGEMM packs
    a matrix on one core, ~10x slower than casting it to float16, so the matrices are packed on torch's
    threads side by side: a worker's start-up waits for it."""
    return _replace(model, nn.Linear, PackedLinear, threads=torch.get_num_threads())


def pack_bfloat16_linears(model: nn.Module) -> int:
    """Replace every nn.Linear of a bfloat16 model by a BFloat16PackedLinear, in place; returns how
    many. A tied output projection gets a packed copy; the embedding keeps the table."""
    return _replace(model, nn.Linear, BFloat16PackedLinear, threads=torch.get_num_threads())


def pack_model(model: nn.Module, weights: str = "float16") -> int:
    """Pack `model` for `weights` ("float16": pack_linears, and every nn.Embedding held as a
    HalfEmbedding, matrices first so that a tied output projection is packed from the float32 table
    it shares; "bfloat16": pack_bfloat16_linears); returns how many modules changed."""
    if weights == "bfloat16":
        return pack_bfloat16_linears(model)
    if weights != "float16":
        raise ValueError(f"nothing to pack for weights {weights!r}; packed ones: {', '.join(PACKED_CHOICES)}")
    return pack_linears(model) + _replace(model, nn.Embedding, HalfEmbedding)


def packed_matrix_bytes(out_features: int, in_features: int) -> int:
    """Bytes FBGEMM's packed float16 copy of an (out_features, in_features) matrix holds."""
    rounded = lambda n, block: -(-n // block) * block
    return PACKED_ELEMENT_SIZE * rounded(out_features, FBGEMM_N_BLOCK) * rounded(in_features, FBGEMM_K_BLOCK)


def weight_bytes(cfg, element_size: int, weights: str) -> int:
    """Bytes an engine's weights take: every parameter at element_size ("plain"), or ("float16") the
    matrices packed (packed_matrix_bytes; the output projection a copy of its own, even when tied) and
    the embedding table at 2 bytes, beside norms and biases at element_size. What
    `Engine.weight_bytes()` then holds."""
    if weights == "bfloat16":  # a tied output projection is a packed copy beside the table
        return (cfg.num_parameters() + (cfg.vocab_size * cfg.d_model if cfg.tie_embeddings else 0)) * element_size
    if weights != "float16":
        return cfg.num_parameters() * element_size
    table = cfg.vocab_size * cfg.d_model
    layers = cfg.n_layers * sum(packed_matrix_bytes(n, k) for n, k in cfg.layer_matrix_shapes())
    rest = cfg.num_parameters() - cfg.layer_matrix_parameters() - table - (0 if cfg.tie_embeddings else table)
    output = packed_matrix_bytes(cfg.vocab_size, cfg.d_model)
    return layers + output + PACKED_ELEMENT_SIZE * table + rest * element_size


def packed_weight_bytes(model: nn.Module) -> int:
    """Bytes held by packed matrices and float16 tables (0 for a plain model)."""
    packed = (PackedLinear, BFloat16PackedLinear, HalfEmbedding)
    return sum(m.nbytes() for m in model.modules() if isinstance(m, packed))
