"""`sdls bench engine --roofline SHAPE`: the product path's time per forward by block size, against
this machine's own limits, measured in the same run.

For each block size the Engine decodes infill jobs (a context of about CTX tokens of real source,
random weights of the named shape) committing one token per step, so every block takes one step per
token; each step is timed from the end of the step before it, the step loop's host work included.
A block's first step (a bidirectional model re-encodes the canvas there) is reported apart; the
others are block steps, the forward that dominates decoding, and what the ratio is about.

A block step of T fed tokens, W output rows and R cached keys must at least
- compute 2 x T x (every weight matrix of the layers) + 2 x W x d x vocab (the output projection at
  the positions still masked) + 4 x T x (R + T) x heads x head_dim per layer (attention), and
- read every weight once (the embedding table only when it is tied: the output projection reads it
  whole; otherwise only T rows are gathered) plus the cached keys and values it attends over.
The limits: the best of a few large square matmuls (FLOP/s) and of large copies (bytes read +
written per second), measured before and after the timings (the best of both: on a shared machine
a limit measured while others load it would flatter the ratio). roofline = max(FLOPs / peak, bytes / bandwidth); ratio = measured / roofline.
"""

from __future__ import annotations

import statistics
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelConfig
from .engine import DecodeSettings, Engine, InfillJob
from .packed_weights import PACKED_ELEMENT_SIZE, resolve_weights

BLOCKS = (4, 8, 16, 32)
CPU_GOAL, GPU_GOAL = 1.5, 1.25  # issue 13: the product path within this factor of the limit


@dataclass(frozen=True)
class Limits:
    flops: float  # FLOP/s of a large matmul in the model's dtype
    bandwidth: float  # bytes/s of a large copy (read + written)
    matmul: str  # what was timed, for the report
    copy: str

    def best(self, other: Limits) -> Limits:
        """The higher of two measurements of each limit (on a shared machine, the nearer to the truth)."""
        return Limits(max(self.flops, other.flops), max(self.bandwidth, other.bandwidth), self.matmul, self.copy)


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def measure_limits(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> Limits:
    """The best of `repeats` timings of a square matmul and of a copy, each after a warm-up."""
    n = 8192 if device.type == "cuda" else 2048
    nbytes = (1 << 30) if device.type == "cuda" else (256 << 20)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    best_mm = best_copy = float("inf")
    torch.mm(a, b)
    dst.copy_(src)
    for _ in range(repeats):
        t0 = _clock(device)
        torch.mm(a, b)
        best_mm = min(best_mm, _clock(device) - t0)
        t0 = _clock(device)
        dst.copy_(src)
        best_copy = min(best_copy, _clock(device) - t0)
    name = str(dtype).replace("torch.", "")
    return Limits(
        flops=2 * n**3 / best_mm,
        bandwidth=2 * nbytes / best_copy,
        matmul=f"{n}x{n}x{n} {name} matmul, best of {repeats}",
        copy=f"{nbytes >> 20} MiB copy (read + write), best of {repeats}",
    )


# -- what a block step must do ------------------------------------------------------------------
def layer_matrix_params(cfg: ModelConfig) -> int:
    """Weights multiplied by every fed token: the layers' q, k, v, o and SwiGLU matrices."""
    return cfg.layer_matrix_parameters()


def step_flops(cfg: ModelConfig, fed: int, out_rows: int, keys: int) -> float:
    attention = cfg.n_layers * 4 * fed * (keys + fed) * cfg.n_heads * cfg.head_dim
    return 2 * fed * layer_matrix_params(cfg) + 2 * out_rows * cfg.d_model * cfg.vocab_size + attention


def step_bytes(
    cfg: ModelConfig, keys: int, element_size: int, weight_size: int | None = None, kv_size: int | None = None
) -> float:
    """Bytes a block step reads; weight_size and kv_size: bytes per element of the matrices and of the
    KV cache as stored (2 and 2 for packed float16 weights and a bfloat16 cache beside float32
    activations), default element_size."""
    read_weights = cfg.num_parameters() - (0 if cfg.tie_embeddings else cfg.vocab_size * cfg.d_model)
    kv = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * keys
    return read_weights * (weight_size or element_size) + kv * (kv_size or element_size)


def roofline_ms(flops: float, nbytes: float, limits: Limits) -> tuple[float, float]:
    """(compute floor, memory floor) in ms."""
    return flops / limits.flops * 1e3, nbytes / limits.bandwidth * 1e3


# -- timing the product path ----------------------------------------------------------------------
def context_text(tokenizer, tokens: int, source: Path) -> str:
    """About `tokens` tokens of real source (whole files, then cut), ending at a line start."""
    text, parts = "", sorted(p for p in source.glob("*.py") if p.stat().st_size > 4000)
    for path in parts:
        text += path.read_text(encoding="utf-8", errors="replace")
        if len(text) > tokens * 8:
            break
    ids = tokenizer.encode(text)[:tokens]
    cut = tokenizer.decode(ids)
    return cut[: cut.rfind("\n") + 1] or cut


@dataclass
class BlockTiming:
    block: int
    path: str  # the engine's forward paths that served the block steps
    step_ms: list[float]
    start_ms: list[float]
    flops: float  # mean over the timed block steps
    nbytes: float
    context: int


def time_block(engine: Engine, prefix: str, block: int, steps: int) -> BlockTiming:
    """Decode enough blocks of `block` tokens to time at least `steps` block steps."""
    cfg = engine.cfg
    shift = int(cfg.logit_shift)
    blocks = -(-steps // max(1, block - 1))
    settings = DecodeSettings(rule="fixed", tokens_per_step=1, block_size=block)
    job = InfillJob(prefix, "", max_new_tokens=blocks * block, settings=settings)
    engine.run([InfillJob(prefix, "", max_new_tokens=block, settings=settings)])  # warm-up
    step_ms, start_ms, flops, nbytes, paths = [], [], [], [], set()
    last = {"t": 0.0, "block": -1, "context": 0, "counts": dict(engine.counters.by_path)}
    element = torch.empty((), dtype=engine.dtype).element_size()  # activations (the table may be float16)
    weight_size = PACKED_ELEMENT_SIZE if engine.weights == "float16" else element

    def on_step(event) -> None:
        took = (time.perf_counter() - last["t"]) * 1e3
        counts = dict(engine.counters.by_path)
        served = [k for k, v in counts.items() if v > last["counts"][k]]  # this step's forward path
        if event.block_start != last["block"]:
            start_ms.append(took)
        else:
            # Keys the block attends over: the whole canvas for a bidirectional model's approximate
            # cache, the context before the block for a block-causal one.
            keys = event.middle_start + blocks * block if cfg.attention == "bidirectional" else event.block_start
            flops.append(step_flops(cfg, block + shift, len(event.predicted), keys))
            nbytes.append(step_bytes(cfg, keys, element, weight_size, engine.cache.k.element_size()))
            step_ms.append(took)
            paths.update(served)
        last.update(block=event.block_start, context=event.middle_start, counts=counts)
        last["t"] = time.perf_counter()

    last["t"] = time.perf_counter()
    engine.run([job], on_step=on_step)
    return BlockTiming(
        block=block,
        path="+".join(sorted(paths)) or "-",
        step_ms=step_ms,
        start_ms=start_ms,
        flops=statistics.fmean(flops) if flops else 0.0,
        nbytes=statistics.fmean(nbytes) if nbytes else 0.0,
        context=int(last["context"]),
    )


def per_token_ms(block: int, start_ms: float, step_ms: float) -> float:
    """A block's cost per token when each step commits one: its first step, then block - 1 block steps."""
    return (start_ms + (block - 1) * step_ms) / block


def table(timings: list[BlockTiming], limits: Limits) -> list[str]:
    head = (
        "| block | forward path | block steps | ms/forward p50 | GFLOP/forward | MB/forward | compute floor ms "
        "| memory floor ms | ratio | bound | block start ms p50 | ms/token, 1 token/step |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for t in timings:
        if not t.step_ms:
            lines.append(f"| {t.block} | {t.path} | 0 | - | - | - | - | - | - | - | - | - |")
            continue
        ms = statistics.median(t.step_ms)
        compute, memory = roofline_ms(t.flops, t.nbytes, limits)
        start = statistics.median(t.start_ms) if t.start_ms else None
        lines.append(
            f"| {t.block} | {t.path} | {len(t.step_ms)} | {ms:.3f} | {t.flops / 1e9:.4f} | {t.nbytes / 1e6:.3f} "
            f"| {compute:.3f} | {memory:.3f} | {ms / max(compute, memory):.2f} "
            f"| {'compute' if compute >= memory else 'memory'} | {'-' if start is None else f'{start:.2f}'} "
            f"| {'-' if start is None else f'{per_token_ms(t.block, start, ms):.2f}'} |"
        )
    return lines


def build(
    shape: str, device: torch.device, dtype: torch.dtype, ctx: int, max_new: int, seed: int, weights: str | None = None
) -> Engine:
    from .bench import random_config
    from .bench_decode import random_model
    from .checkpoint import scratch_model_dir
    from .tokenizer import Tokenizer

    tokenizer = Tokenizer.from_file(scratch_model_dir() / "tokenizer.json")
    cfg = random_config(shape, tokenizer)
    if ctx + max_new + 2 * cfg.block_size > cfg.max_seq_len:
        raise ValueError(f"--ctx {ctx} plus {max_new} new tokens is longer than {shape}'s {cfg.max_seq_len}")
    torch.manual_seed(seed)
    model = random_model(cfg, device, dtype)
    return Engine(
        model,
        tokenizer,
        device=device,
        dtype=dtype,
        max_batch=1,
        n_sessions=1,
        max_context=ctx + 8,
        max_new_tokens=max_new,
        name=f"random {shape}",
        weights=weights,  # None: the product's choice (packed float16 on a CPU without native bfloat16)
    )


def weights_problem(choices: list[str] | None, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why one of the ways of storing the weights asked for cannot run in `dtype` on `device`, checked
    before anything is timed (a table each, so a late refusal would throw the earlier ones away)."""
    for choice in choices or [None]:
        try:
            resolve_weights(choice, device, dtype)
        except ValueError as exc:
            hint = " (add --dtypes float32)" if choice == "float16" and dtype != torch.float32 else ""
            return f"{exc}{hint}"
    return None


def run(args) -> int:
    from .precision import resolve_dtype

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = resolve_dtype(args.dtypes[0] if args.dtypes else "auto", device)
    blocks = sorted(set(args.blocks))
    most = max(b * -(-args.steps // max(1, b - 1)) for b in blocks)
    source = args.source if args.source is not None else Path(sysconfig.get_paths()["stdlib"])
    problem = weights_problem(args.weights, device, dtype)
    if problem:
        print(f"sdls bench engine: {problem}", file=sys.stderr)
        return 2
    before = measure_limits(device, dtype)
    runs = []  # (engine's description, timings per context), one per way of storing the weights
    for weights in args.weights or [None]:
        engine = build(args.roofline, device, dtype, max(args.ctx), most, args.seed, weights)
        timed = [
            [time_block(engine, context_text(engine.tokenizer, c, source), b, args.steps) for b in blocks]
            for c in args.ctx
        ]
        runs.append((engine.describe(), timed))
        del engine
    after = measure_limits(device, dtype)
    limits = before.best(after)
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, torch threads {torch.get_num_threads()}"
    )
    print(
        f"limits measured in this run, the best of before and after the timings: matmul {limits.flops / 1e9:.1f} "
        f"GFLOP/s ({limits.matmul}; before {before.flops / 1e9:.1f}, after {after.flops / 1e9:.1f}); memory "
        f"{limits.bandwidth / 1e9:.2f} GB/s ({limits.copy}; before {before.bandwidth / 1e9:.2f}, "
        f"after {after.bandwidth / 1e9:.2f})"
    )
    for info, timed in runs:
        for timings in timed:
            print(
                f"\nroofline: {info['model']} ({info['parameters'] / 1e6:.1f}M params, {info['attention']}), "
                f"{info['dtype']}, weights {info['weights']}, {where}, context {timings[0].context} tokens, "
                "batch 1, 1 token committed per step"
            )
            print("\n".join(table(timings, limits)))
    goal = GPU_GOAL if device.type == "cuda" else CPU_GOAL
    print(f"\nratio = ms/forward / max(compute floor, memory floor); goal: within {goal}x")
    return 0
