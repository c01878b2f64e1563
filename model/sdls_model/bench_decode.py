"""`sdls bench kernels`: one denoising step at the Qwen2.5 shapes, eager vs CUDA graph vs graph + kernels.

A step is what the engine does per forward while decoding a block: the block's tokens over a
cached context, logits for the block, confidence, the threshold commit rule — all on the device.
Columns (ms per step, batch 1, bf16, random weights):
- eager:          Transformer.forward with CacheIO + sampling.propose/select_threshold, as written;
- graph:          the same captured in a CUDA graph (capture itself proves there is no host sync);
- graph+fused:    FastDecoder with torch ops (fused qkv / gate-up matmuls, cache read in place), graph;
- graph+kernels:  FastDecoder with the Triton kernels, graph;
- HBM floor:      bytes a step must read (every weight but the embedding table, which is only
                  gathered, plus the lm_head and the KV cache) / bandwidth (a measured device copy);
- engine:         the product path: the Engine decoding an infill job over a context of that
                  length, ms per block step (steps after a block's first, from the end of one step to
                  the end of the next: the step loop's host work included), with the forward path
                  that served them (graph, static, fast, plain). Once with the shape as sdls's own
                  block-causal layout (the graph path on CUDA) and once bidirectional, as the
                  Qwen-based diffusion models run (the approximate cache on the plain path).
Also printed: the kernel path's largest hidden-state difference from eager and how many of the
block's greedy tokens agree. Then each kernel against its torch reference (sdls_kernels.bench).

`--smoke` runs a tiny shape in float32 end to end, on any device (on a CPU the kernel path runs
through Triton's interpreter when TRITON_INTERPRET=1, and the GPU figures are marked as owed).
"""

from __future__ import annotations

import argparse
import time

import torch

from sdls_kernels import bench as kernel_bench
from sdls_kernels.dispatch import interpreter_active

from . import sampling
from .bench import random_config
from .cache import KVCache
from .checkpoint import scratch_model_dir
from .config import ModelConfig
from .engine import Engine
from .fast_path import CapturedStep, FastDecoder, threshold_step
from .tokenizer import Tokenizer
from .transformer import CacheIO, Transformer

DEFAULT_SHAPES = "qwen2.5-0.5b,qwen2.5-1.5b,qwen2.5-7b"
NOMINAL_BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12, "A100": 2.0e12, "L40S": 0.864e12}  # bytes/s, by name
OWED = "GPU run owed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated ModelConfig presets")
    parser.add_argument("--contexts", default="1024,4096", help="comma-separated cached context lengths")
    parser.add_argument("--block", type=int, default=32, help="tokens decoded in parallel (the block)")
    parser.add_argument("--iters", type=int, default=30, help="timed steps per column")
    parser.add_argument("--threshold", type=float, default=0.9, help="confidence threshold of the commit rule")
    parser.add_argument("--smoke", action="store_true", help="tiny shape, any device: checks the whole path")
    parser.add_argument("--no-kernel-table", action="store_true", help="skip the per-kernel table")
    parser.add_argument("--no-engine", action="store_true", help="skip the product-path (engine) columns")
    parser.add_argument("--tune", action="store_true", help="also time block attention tile sizes (GPU)")


# -- set-up ---------------------------------------------------------------------------------------
def random_model(cfg: ModelConfig, device: torch.device, dtype: torch.dtype) -> Transformer:
    """Random weights made on the device (a 7B model in well under a second on a GPU)."""
    if device.type == "cpu":
        return Transformer(cfg).init_weights(seed=0).to(dtype).eval()
    with torch.device("meta"):
        model = Transformer(cfg).to(dtype)
    model = model.to_empty(device=device)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=g)
    return model.eval()


def weight_bytes(model: Transformer) -> int:
    """Bytes a step reads from the weights: all of them except the embedding table (only T rows
    are gathered) — unless it is tied, when the lm_head reads it whole."""
    untied_table = None if model.cfg.tie_embeddings else model.embed_tokens.weight
    # parameters() yields a tied tensor once.
    return sum(p.numel() * p.element_size() for p in model.parameters() if p is not untied_table)


def kv_bytes(cfg: ModelConfig, ctx: int, dtype: torch.dtype) -> int:
    return 2 * cfg.n_layers * cfg.n_kv_heads * ctx * cfg.head_dim * torch.empty((), dtype=dtype).element_size()


def measured_bandwidth(device: torch.device, nbytes: int = 1 << 30) -> float:
    """Bytes/s of a large device-to-device copy (reads + writes)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    return 2 * nbytes * 10 / (start.elapsed_time(end) / 1000.0)


def nominal_bandwidth(device: torch.device) -> float | None:
    name = torch.cuda.get_device_name(device)
    return next((bw for key, bw in NOMINAL_BANDWIDTH.items() if key in name), None)


# -- timing ---------------------------------------------------------------------------------------
def time_ms(fn, iters: int, device: torch.device) -> float:
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / iters
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) * 1000.0 / iters


# -- one shape, one context -----------------------------------------------------------------------
def bench_case(model: Transformer, ctx: int, block: int, iters: int, threshold: float, device) -> dict:
    cfg, dtype = model.cfg, model.embed_tokens.weight.dtype
    g = torch.Generator(device=device).manual_seed(1)
    cache = KVCache(cfg, 1, ctx + block, dtype, device)
    cache.k.normal_(generator=g)
    cache.v.normal_(generator=g)
    canvas = torch.full((1, block), cfg.mask_id, device=device)
    canvas[0, ::4] = torch.randint(0, cfg.vocab_size, (len(range(0, block, 4)),), device=device, generator=g)
    positions = (ctx + torch.arange(block, device=device))[None]
    mask = torch.ones(1, 1, block, ctx + block, dtype=torch.bool, device=device)
    lens = torch.tensor([ctx], dtype=torch.int32, device=device)

    @torch.no_grad()
    def eager_step(canvas, positions, mask):
        hidden = model(canvas, positions, mask, CacheIO(cache, [0], read_len=ctx))  # (1, T, d)
        candidates, conf = sampling.propose(model.logits(hidden))
        commit = sampling.select_threshold(conf, canvas == cfg.mask_id, threshold)
        return torch.where(commit, candidates, canvas)

    kernel_dec, fused_dec = FastDecoder(model, kernels=True), FastDecoder(model, kernels=False)

    def fast_step(decoder):
        return lambda canvas, positions: threshold_step(decoder, canvas, positions, cache, lens, ctx, threshold)[0]

    with torch.no_grad():
        want = model(canvas, positions, mask, CacheIO(cache, [0], read_len=ctx))
    result = {"ctx": ctx, "eager": time_ms(lambda: eager_step(canvas, positions, mask), iters, device)}
    kernels_run = device.type == "cuda" or interpreter_active()
    if kernels_run:
        got = kernel_dec(canvas, positions, cache, lens, ctx)
        result["hidden_diff"] = (got.float() - want.float()).abs().max().item()
        result["hidden_scale"] = want.float().abs().max().item()
        result["same_tokens"] = (model.logits(got).argmax(-1) == model.logits(want).argmax(-1)).float().mean().item()
    if device.type == "cuda":
        for name, fn, inputs in (
            ("graph", eager_step, (canvas, positions, mask)),
            ("graph+fused", fast_step(fused_dec), (canvas, positions)),
            ("graph+kernels", fast_step(kernel_dec), (canvas, positions)),
        ):
            step = CapturedStep(fn, inputs)
            result[name] = time_ms(lambda: step(*inputs), iters, device)
            del step
    return result


# -- the product path ----------------------------------------------------------------------------
def product_engines(model: Transformer, tokenizer, max_ctx: int, block: int, steps: int) -> dict[str, Engine]:
    """The Engine over these weights, as a block-causal and as a bidirectional model of this shape."""
    from dataclasses import replace

    dev, dtype = model.embed_tokens.weight.device, model.embed_tokens.weight.dtype
    variants = {
        "block-causal": dict(attention="block_causal", infill_layout="prefix_only", logit_shift=False),
        "bidirectional": dict(attention="bidirectional", infill_layout="in_place", logit_shift=False),
    }
    engines = {}
    for name, fields in variants.items():
        view = Transformer.__new__(Transformer)  # the same modules and weights under another config
        view.__dict__.update(model.__dict__)
        view.cfg = replace(model.cfg, **fields)
        engines[name] = Engine(
            view,
            tokenizer,
            device=dev,
            dtype=dtype,
            max_batch=1,
            n_sessions=1,
            max_context=max_ctx + 8,
            max_new_tokens=block * steps,
            name=f"{model.cfg.family} {name}",
        )
    return engines


def engine_step_ms(engine: Engine, ctx: int, block: int, steps: int) -> tuple[float, str]:
    """(ms per block step p50, the forward path that served them) of an infill job over ctx tokens."""
    import statistics
    import sysconfig
    from pathlib import Path

    from .roofline import context_text, time_block

    prefix = context_text(engine.tokenizer, ctx, Path(sysconfig.get_paths()["stdlib"]))
    timing = time_block(engine, prefix, block, steps)
    return statistics.median(timing.step_ms), timing.path


def _fmt(value, digits=2):
    return OWED if value is None else f"{value:.{digits}f}"


def format_table(rows: list[dict], device: torch.device) -> str:
    head = [
        "shape",
        "ctx",
        "eager ms",
        "graph ms",
        "graph+fused ms",
        "graph+kernels ms",
        "HBM floor ms",
        "kernels / floor",
        "max abs Δhidden (scale of hidden)",
        "same tokens",
        "engine ms, block-causal (path)",
        "engine ms, bidirectional (path)",
        "engine block-causal / floor",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        floor = r.get("floor")
        ratio = None if floor is None or "graph+kernels" not in r else r["graph+kernels"] / floor
        diff = (
            f"{r['hidden_diff']:.3g} ({r['hidden_scale']:.3g})"
            if "hidden_diff" in r
            else "not run (set TRITON_INTERPRET=1)"
        )
        same = f"{100 * r['same_tokens']:.0f}%" if "same_tokens" in r else "-"
        engine = [f"{r[k][0]:.2f} ({r[k][1]})" if k in r else "-" for k in ("block-causal", "bidirectional")]
        product = None if floor is None or "block-causal" not in r else r["block-causal"][0] / floor
        lines.append(
            "| "
            + " | ".join(
                [
                    r["shape"],
                    str(r["ctx"]),
                    _fmt(r["eager"]),
                    _fmt(r.get("graph")),
                    _fmt(r.get("graph+fused")),
                    _fmt(r.get("graph+kernels")),
                    _fmt(floor, 3),
                    _fmt(ratio),
                    diff,
                    same,
                    *engine,
                    _fmt(product),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        print(
            "sdls bench kernels: needs a CUDA GPU; `--smoke` checks the whole path on the CPU "
            "(with TRITON_INTERPRET=1 to run the kernels in Triton's interpreter)"
        )
        return 2
    if device.type == "cpu":
        torch.set_num_threads(1)  # a shared CPU: one thread keeps the smoke run quick and polite
    shapes = ["test-tiny"] if args.smoke else [s.strip() for s in args.shapes.split(",") if s.strip()]
    contexts = [64] if args.smoke else [int(c) for c in args.contexts.split(",")]
    block = min(args.block, 8) if args.smoke else args.block
    iters = min(args.iters, 3) if args.smoke and device.type == "cpu" else args.iters
    dtype = torch.bfloat16 if device.type == "cuda" and not args.smoke else torch.float32  # smoke: exact checks
    bandwidth = measured_bandwidth(device) if device.type == "cuda" else None
    rows = []
    steps = 3 if args.smoke else 16
    tokenizer = Tokenizer.from_file(scratch_model_dir() / "tokenizer.json")
    for name in shapes:
        cfg = random_config(name, tokenizer)  # the shape's own vocabulary, the tokenizer's special ids
        model = random_model(cfg, device, dtype)
        engines = product_engines(model, tokenizer, max(contexts), block, steps) if not args.no_engine else {}
        for ctx in contexts:
            row = {"shape": name, **bench_case(model, ctx, block, iters, args.threshold, device)}
            for variant, engine in engines.items():
                row[variant] = engine_step_ms(engine, ctx, block, steps)
            if bandwidth:
                row["floor"] = (weight_bytes(model) + kv_bytes(cfg, ctx, dtype)) / bandwidth * 1000.0
            rows.append(row)
            print(f"  {name} ctx {ctx}: done", flush=True)
        del model, engines
        if device.type == "cuda":
            torch.cuda.empty_cache()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\nDecode step, batch 1, block {block}, {str(dtype).replace('torch.', '')}, random weights, {where}")
    print(format_table(rows, device))
    if bandwidth:
        nominal = nominal_bandwidth(device)
        print(
            f"\nHBM floor uses the measured copy bandwidth {bandwidth / 1e12:.2f} TB/s"
            + (f" (nominal {nominal / 1e12:.2f} TB/s: floor x {bandwidth / nominal:.2f})" if nominal else "")
        )
        print("Goal: graph+kernels within 1.25x of the floor.")
    else:
        print(
            f"\nCPU: eager times are CPU figures; graph columns, the floor and kernel timings: {OWED} "
            "(`sdls bench kernels` on one GPU, < 10 min)."
        )
    if not args.no_kernel_table:
        print("\nEach kernel vs its torch reference (us per call inside a CUDA graph)")
        print(kernel_bench.format_table(kernel_bench.run_all(device, smoke=args.smoke)))
    if args.tune and device.type == "cuda":
        kernel_bench.print_tuning(device)
    return 0
