"""`sdls bench engine`: the reference rule against threshold decoding, side by side, one run.

Tasks are infill positions in real source files (the standard library by default): the prefix is
the file up to the start of a line, the suffix the lines after it. Every configuration decodes the
same tasks on the same warm engine; figures are measured, nothing is assumed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sysconfig
import time
from pathlib import Path

from .engine import DecodeSettings, Engine, InfillJob
from .precision import DTYPE_NAMES

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
        default=["float32"],
        choices=DTYPE_NAMES,
        help="compute in each of these, side by side; later ones are also compared with the first "
        "(e.g. --dtypes float32 bfloat16)",
    )


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


def build_engine(args, dtype: str = "float32") -> Engine:
    if args.random:
        import torch

        from .checkpoint import default_model_dir
        from .config import ModelConfig
        from .tokenizer import Tokenizer
        from .transformer import Transformer

        tokenizer = Tokenizer.from_file(default_model_dir() / "tokenizer.json")
        shape = (
            dict(attention="bidirectional", infill_layout="in_place", logit_shift=True) if args.bidirectional else {}
        )
        cfg = ModelConfig.from_name(args.random, vocab_size=max(tokenizer.vocab_size, 64), **shape)
        model = Transformer(cfg).init_weights(seed=args.seed)
        torch.manual_seed(args.seed)
        return Engine(model, tokenizer, dtype=getattr(torch, dtype), name=f"random {args.random}")
    return Engine.from_dir(args.model, dtype=dtype)


def run(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    engines = {dtype: build_engine(args, dtype) for dtype in dict.fromkeys(args.dtypes)}
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
        f"| {'decoding':36} | dtype    | tokens/forward | forwards/s | tokens/s | ms/job p50 "
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
                f"| {name:36} | {dtype:8} | {tokens / forwards:14.2f} | {forwards / total:10.1f} | "
                f"{tokens / total:8.1f} | {statistics.median(times) * 1000:10.1f} | {same:22.0%} | "
                f"{same_first:{len(first) + 13}.0%} |"
            )
    return 0
