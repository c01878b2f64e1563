"""`sdls bench engine`: the reference rule against threshold decoding, side by side, one run.

Tasks are infill positions in real source files (the standard library by default): the prefix is
the file up to the start of a line, the suffix the lines after it. Every configuration decodes the
same tasks on the same warm engine; figures are measured, nothing is assumed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import sysconfig
import time
from pathlib import Path

from .engine import DecodeSettings, Engine, InfillJob
from .packed_weights import WEIGHT_CHOICES
from .precision import DTYPE_NAMES
from .roofline import BLOCKS, weights_problem

CONFIGS = {
    "reference (fixed 1/step, no cache)": DecodeSettings(rule="fixed", tokens_per_step=1, cache="none"),
    "fixed 1/step, block cache": DecodeSettings(rule="fixed", tokens_per_step=1, cache="auto"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--random", metavar="PRESET", help="random weights of a named shape instead of a checkpoint")
    parser.add_argument(
        "--bidirectional",
        action="store_true",
        help="with --random: a bidirectional, in-place, shifted-logit model (Dream-like)",
    )
    parser.add_argument("--tasks", type=int, default=12, help="infill tasks (default 12)")
    parser.add_argument("--max-new", type=int, default=32, help="tokens to generate per task")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.7, 0.5])
    parser.add_argument(
        "--source",
        type=Path,
        default=Path(sysconfig.get_paths()["stdlib"]),
        help="directory of .py files to take tasks from",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=None,
        choices=DTYPE_NAMES,
        help="compute in each of these, side by side; later ones are also compared with the first "
        "(e.g. --dtypes float32 bfloat16; default float32; --roofline: the first, default bfloat16 where "
        "the device multiplies it natively)",
    )
    roof = parser.add_argument_group("roofline (--roofline SHAPE: time per forward by block size vs this machine)")
    roof.add_argument("--roofline", metavar="SHAPE", help="a ModelConfig preset, random weights (e.g. qwen2.5-0.5b)")
    roof.add_argument(
        "--ctx", type=int, nargs="+", default=[1024], help="context tokens before the middle, a table each (1024)"
    )
    roof.add_argument("--blocks", type=int, nargs="+", default=list(BLOCKS), help="block sizes (default 4 8 16 32)")
    parser.add_argument(
        "--weights",
        nargs="+",
        default=None,
        choices=WEIGHT_CHOICES,
        help="how the matrices are stored, a table each, side by side in one run "
        "(default: SDLS_CPU_WEIGHTS, else auto, the product's choice)",
    )
    roof.add_argument("--steps", type=int, default=24, help="block steps timed per block size (default 24)")
    roof.add_argument("--device", help="cpu or cuda (default: cuda if available)")


def infill_tasks(source: Path, count: int, seed: int, context_lines: int = 40) -> list[tuple[str, str]]:
    """(prefix, suffix) pairs cut at line starts in real files, deterministic for a seed."""
    files = sorted(p for p in source.glob("*.py") if p.stat().st_size > 2000)
    rng = random.Random(seed)
    tasks = []
    while len(tasks) < count and files:
        lines = rng.choice(files).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        if len(lines) < context_lines * 2:
            continue
        cut = rng.randrange(context_lines, len(lines) - context_lines)
        if not lines[cut].strip():
            continue
        indent = lines[cut][: len(lines[cut]) - len(lines[cut].lstrip())]
        tasks.append(
            ("".join(lines[cut - context_lines : cut]) + indent, "".join(lines[cut + 1 : cut + 1 + context_lines // 2]))
        )
    return tasks


# Special ids a preset may name, and the shipped tokenizer's token for each (tokenizer.SPECIAL_TOKENS).
SPECIAL_IDS = {
    "mask_id": "<|mask|>",
    "eos_id": "<|endoftext|>",
    "pad_id": "<|endoftext|>",
    "bos_id": "<|bos|>",
    "fim_prefix_id": "<|fim_prefix|>",
    "fim_suffix_id": "<|fim_suffix|>",
    "fim_middle_id": "<|fim_middle|>",
}


def random_config(name: str, tokenizer, bidirectional: bool = False):
    """A named shape for random weights: its own vocabulary size (the output projection costs what it
    costs in the real model), at least the tokenizer's, with the special ids the preset names taken from
    the tokenizer the jobs are encoded with, so that every id lies inside the vocabulary."""
    from .config import PRESETS, ModelConfig

    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    ids = {}
    for field_name, token in SPECIAL_IDS.items():
        if field_name in preset and preset[field_name] is None:
            continue  # the shape has no such token (e.g. no fill-in-the-middle tokens)
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"the tokenizer has no {token} token, which preset {name!r} needs for {field_name}")
        ids[field_name] = token_id
    shape = dict(attention="bidirectional", infill_layout="in_place", logit_shift=True) if bidirectional else {}
    vocab = max(preset.get("vocab_size", ModelConfig.vocab_size), tokenizer.vocab_size)
    return ModelConfig.from_name(name, vocab_size=vocab, **ids, **shape)


def build_engine(args, dtype: str = "float32", weights: str | None = None, **engine_kwargs) -> Engine:
    if args.random:
        import torch

        from .checkpoint import scratch_model_dir
        from .tokenizer import Tokenizer
        from .transformer import Transformer

        tokenizer = Tokenizer.from_file(scratch_model_dir() / "tokenizer.json")
        cfg = random_config(args.random, tokenizer, args.bidirectional)
        model = Transformer(cfg).init_weights(seed=args.seed)
        torch.manual_seed(args.seed)
        return Engine(
            model,
            tokenizer,
            dtype=getattr(torch, dtype),
            name=f"random {args.random}",
            weights=weights,
            **engine_kwargs,
        )
    return Engine.from_dir(args.model, dtype=dtype, weights=weights, **engine_kwargs)


def run(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.roofline:
        from . import roofline

        return roofline.run(args)
    # One engine per dtype and way of storing the weights, e.g. "float32" (the product's choice for it
    # here) or "float32+plain" / "float32+float16" with --weights.
    variants = [(d, w) for d in dict.fromkeys(args.dtypes or ["float32"]) for w in (args.weights or [None])]
    for d in dict.fromkeys(args.dtypes or ["float32"]):
        problem = weights_problem(args.weights, torch.device("cpu"), getattr(torch, d))  # the engines run on the CPU
        if problem:
            print(f"sdls bench engine: {problem}", file=sys.stderr)
            return 2
    engines = {(d if w is None else f"{d}+{w}"): build_engine(args, d, w) for d, w in variants}
    width = max(8, *map(len, engines))
    first = next(iter(engines))
    tasks = infill_tasks(args.source, args.tasks, args.seed)
    configs = dict(CONFIGS)
    for tau in args.thresholds:
        configs[f"threshold {tau}"] = DecodeSettings(rule="threshold", threshold=tau)
    info = engines[first].describe()
    print(
        f"model: {info['model']} ({info['parameters'] / 1e6:.1f}M params, {info['attention']}, "
        f"block {info['block_size']}), device {info['device']}, {len(tasks)} tasks x {args.max_new} tokens, "
        f"torch threads {torch.get_num_threads()}"
    )
    for engine in engines.values():
        engine.run([InfillJob(*tasks[0], max_new_tokens=4)])  # warm-up
    texts_of: dict[tuple[str, str], list[str]] = {}
    header = (
        f"| {'decoding':36} | {'dtype':{width}} | tokens/forward | forwards/s | tokens/s | ms/job p50 "
        f"| same text as reference | same text as {first} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, settings in configs.items():
        for dtype, engine in engines.items():  # the dtypes of one decoding rule side by side
            texts, forwards, tokens, times = [], 0, 0, []
            for prefix, suffix in tasks:
                t0 = time.perf_counter()
                result = engine.run([InfillJob(prefix, suffix, args.max_new, settings)])[0]
                times.append(time.perf_counter() - t0)
                texts.append(result.text)
                forwards += result.stats.forwards
                tokens += result.stats.tokens_committed
            texts_of[name, dtype] = texts
            total = sum(times)
            reference = texts_of[next(iter(configs)), first]
            same = sum(a == b for a, b in zip(texts, reference)) / len(texts)
            same_first = sum(a == b for a, b in zip(texts, texts_of[name, first])) / len(texts)
            print(
                f"| {name:36} | {dtype:{width}} | {tokens / forwards:14.2f} | {forwards / total:10.1f} | "
                f"{tokens / total:8.1f} | {statistics.median(times) * 1000:10.1f} | {same:22.0%} | "
                f"{same_first:{len(first) + 13}.0%} |"
            )
    return 0
