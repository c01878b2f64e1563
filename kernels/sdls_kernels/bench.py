"""Each kernel against its torch reference, at the Qwen2.5 decode shapes (GPU), or tiny ones (CPU check).

    python -m sdls_kernels.bench            # on a GPU: one table, a few seconds
    python -m sdls_kernels.bench --smoke    # anywhere: tiny shapes, checks agreement, no timings on CPU

Times are per call measured inside a CUDA graph (many calls captured back to back), which is how
the decode step runs them: launch overhead as in a graph, not as in eager mode.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .block_attention import block_attention
from .confidence import confidence, confidence_ref
from .rmsnorm import add_rmsnorm, add_rmsnorm_ref
from .rope import inverse_frequencies, rope_, rope_ref
from .swiglu import swiglu, swiglu_ref

# name: (d_model, n_heads, n_kv_heads, vocab, ffn) — the Qwen2.5 shapes the engine benchmarks.
SHAPES = {"0.5b": (896, 14, 2, 151936, 4864), "1.5b": (1536, 12, 2, 151936, 8960), "7b": (3584, 28, 4, 152064, 18944)}
SMOKE_SHAPES = {"tiny": (96, 6, 2, 1000, 200)}


def time_cuda(fn: Callable[[], object], calls: int = 20, replays: int = 10) -> float:
    """Microseconds per call of `fn`, captured `calls` times in one CUDA graph and replayed."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1000.0 / (calls * replays)


@dataclass
class Row:
    kernel: str
    shape: str
    torch_us: float | None
    kernel_us: float | None
    max_diff: float  # kernel vs torch reference, same inputs

    def cells(self) -> list[str]:
        t = "n/a" if self.torch_us is None else f"{self.torch_us:.1f}"
        k = "n/a" if self.kernel_us is None else f"{self.kernel_us:.1f}"
        speed = "n/a" if None in (self.torch_us, self.kernel_us) else f"{self.torch_us / self.kernel_us:.2f}x"
        return [self.kernel, self.shape, t, k, speed, f"{self.max_diff:.2g}"]


def _diff(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


def _row(name, shape, ref: Callable, ker: Callable, compare: Callable, device) -> Row:
    diff = compare(ref(), ker())
    if device.type != "cuda":
        return Row(name, shape, None, None, diff)
    return Row(name, shape, time_cuda(ref), time_cuda(ker), diff)


def bench_shape(label: str, dims, device, dtype, contexts=(1024, 4096), block: int = 32) -> list[Row]:
    d, H, Hkv, vocab, ffn = dims
    D = d // H
    g = torch.Generator(device=device).manual_seed(0)
    rnd = lambda *s, scale=1.0: (torch.randn(*s, device=device, generator=g) * scale).to(dtype)
    rows = []

    logits = rnd(block, vocab, scale=3.0)
    rows.append(
        _row(
            "confidence",
            f"{label} {block}x{vocab}",
            lambda: confidence_ref(logits),
            lambda: confidence(logits),
            lambda r, k: max(_diff(r.prob, k.prob), _diff(r.entropy, k.entropy), float((r.token != k.token).sum())),
            device,
        )
    )

    x, res, w = rnd(1, block, d), rnd(1, block, d), 1 + rnd(d, scale=0.1)
    rows.append(
        _row(
            "add_rmsnorm",
            f"{label} {block}x{d}",
            lambda: add_rmsnorm_ref(x, res, w, 1e-6),
            lambda: add_rmsnorm(x, res, w, 1e-6),
            lambda r, k: _diff(r[0], k[0]),
            device,
        )
    )

    gate_up = rnd(1, block, 2 * ffn)
    rows.append(
        _row("swiglu", f"{label} {block}x2x{ffn}", lambda: swiglu_ref(gate_up), lambda: swiglu(gate_up), _diff, device)
    )

    qkv = rnd(1, block, (H + 2 * Hkv) * D)
    positions = torch.arange(1000, 1000 + block, device=device)[None]
    inv = inverse_frequencies(D, 1e6, device=device)
    q, k = qkv[..., : H * D].view(1, block, H, D), qkv[..., H * D : (H + Hkv) * D].view(1, block, Hkv, D)
    q0, k0 = q.clone(), k.clone()

    def rope_torch():
        return rope_ref(q0, positions, inv), rope_ref(k0, positions, inv)

    def rope_kernel():  # in place, so rotate fresh copies; the copies cost the same in both columns
        q.copy_(q0), k.copy_(k0)
        rope_(q, k, positions, inv)
        return q, k

    rows.append(
        _row(
            "rope",
            f"{label} {block}x({H}+{Hkv})x{D}",
            rope_torch,
            rope_kernel,
            lambda r, kk: max(_diff(r[0], kk[0]), _diff(r[1], kk[1])),
            device,
        )
    )

    for ctx in contexts:
        cache_k, cache_v = rnd(1, Hkv, ctx + block, D), rnd(1, Hkv, ctx + block, D)
        qa, kn, vn = rnd(1, H, block, D), rnd(1, Hkv, block, D), rnd(1, Hkv, block, D)
        lens = torch.tensor([ctx], device=device, dtype=torch.int32)

        def attn_torch():
            keys = torch.cat([cache_k[:, :, :ctx], kn], 2)
            values = torch.cat([cache_v[:, :, :ctx], vn], 2)
            valid = torch.arange(ctx + block, device=device)[None] < (lens[:, None] + block)
            return torch.nn.functional.scaled_dot_product_attention(
                qa, keys, values, attn_mask=valid[:, None, None, :], enable_gqa=Hkv != H
            )

        def attn_kernel():
            return block_attention(qa, cache_k, cache_v, kn, vn, lens, read_len=ctx)

        rows.append(
            _row("block_attention", f"{label} T{block} ctx{ctx} {H}/{Hkv}x{D}", attn_torch, attn_kernel, _diff, device)
        )
    return rows


def tune_attention(device, dims, ctx: int = 4096, block: int = 32) -> list[tuple[str, float]]:
    """Microseconds of block attention for a few tile sizes and split counts (GPU only), fastest first."""
    d, H, Hkv = dims[:3]
    D = d // H
    rnd = lambda *s: torch.randn(*s, device=device, dtype=torch.bfloat16)
    cache_k, cache_v = rnd(1, Hkv, ctx, D), rnd(1, Hkv, ctx, D)
    q, kn, vn = rnd(1, H, block, D), rnd(1, Hkv, block, D), rnd(1, Hkv, block, D)
    lens = torch.tensor([ctx], device=device, dtype=torch.int32)
    results = []
    for block_m in (32, 64, 128):
        for block_n in (32, 64, 128):
            for splits in (None, 8, 32):
                label = f"block_m={block_m} block_n={block_n} splits={splits or 'auto'}"
                try:
                    us = time_cuda(
                        lambda: block_attention(
                            q,
                            cache_k,
                            cache_v,
                            kn,
                            vn,
                            lens,
                            read_len=ctx,
                            splits=splits,
                            block_m=block_m,
                            block_n=block_n,
                        )
                    )
                except Exception as exc:  # a tile that does not fit (shared memory) is a result, not a crash
                    print(f"  {label}: failed ({type(exc).__name__}: {str(exc)[:80]})")
                    continue
                results.append((label, us))
    return sorted(results, key=lambda r: r[1])


def format_table(rows: list[Row]) -> str:
    head = ["kernel", "shape", "torch us", "kernel us", "speed-up", "max abs diff"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def run_all(device: torch.device, smoke: bool = False) -> list[Row]:
    dtype = torch.bfloat16 if device.type == "cuda" and not smoke else torch.float32  # smoke: exact checks
    shapes = SMOKE_SHAPES if smoke else SHAPES
    contexts = (64,) if smoke else (1024, 4096)
    block = 8 if smoke and device.type != "cuda" else 32
    rows = []
    for label, dims in shapes.items():
        rows += bench_shape(label, dims, device, dtype, contexts, block)
    return rows


def print_tuning(device) -> None:
    for label, dims in SHAPES.items():
        results = tune_attention(device, dims)
        print(f"\nblock attention {label}, ctx 4096, T 32 (fastest 5 of {len(results)}):")
        for name, us in results[:5]:
            print(f"  {name}: {us:.1f} us")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes (any device)")
    parser.add_argument("--tune", action="store_true", help="also time block attention tile sizes (GPU)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        parser.error("needs a CUDA GPU; use --smoke to check the kernels on the CPU (TRITON_INTERPRET=1)")
    print(format_table(run_all(device, smoke=args.smoke)))
    if args.tune and device.type == "cuda":
        print_tuning(device)
    if device.type != "cuda":
        print("\nCPU: kernels ran in Triton's interpreter (agreement only, no timings). GPU run owed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
