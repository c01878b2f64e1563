"""`sdls bench eval`: HumanEval infill / repair, side by side over decoding settings, one run.

CPU, CI-sized (a few minutes on the small shipped model):
    sdls bench eval --suite ci
The full suites, on a GPU:
    sdls bench eval --suite single-line --device cuda --batch 8
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from sdls_model.precision import add_dtype_argument

from .sandbox import Limits
from .suites import SUITES, build_suite


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint directory (default: the shipped model)")
    parser.add_argument(
        "--suite",
        choices=SUITES,
        default="ci",
        help="single-line | multi-line | full-body | repair | ci (a CPU-sized mix; default)",
    )
    parser.add_argument("--limit", type=int, help="keep N tasks, spread evenly over the suite")
    parser.add_argument("--thresholds", type=float, nargs="+", help="threshold sweep (default 0.9 0.8 0.7 0.5 0.3)")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the reference rule (full recompute every step: the slow one)"
    )
    parser.add_argument(
        "--confidence",
        choices=("prob", "margin", "entropy"),
        default="prob",
        help="confidence score of threshold decoding",
    )
    parser.add_argument(
        "--ends-anywhere",
        action="store_true",
        help="beside each threshold row, the same rule with end tokens free to commit ahead of open masks",
    )
    parser.add_argument(
        "--out", type=Path, help="directory for report.md, the PNG plot and results.json (default: out/eval/<suite>)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    add_dtype_argument(parser)
    parser.add_argument("--batch", type=int, default=1, help="jobs per engine call (latency is per call; default 1)")
    parser.add_argument("--max-new-tokens", type=int, help="override the suite's infill budget")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per test program (default 10)")
    parser.add_argument("--memory-mb", type=int, default=1024, help="address space per test program (default 1024)")
    parser.add_argument("--workers", type=int, help="test programs run in parallel (default: CPU count)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        print("sdls bench eval: --limit must be at least 1", file=sys.stderr)
        return 2
    if args.batch < 1:
        print("sdls bench eval: --batch must be at least 1", file=sys.stderr)
        return 2
    if args.thresholds and not all(0 < t <= 1 for t in args.thresholds):
        print("sdls bench eval: thresholds must lie in (0, 1]", file=sys.stderr)
        return 2
    import torch

    from sdls_model.checkpoint import CheckpointError
    from sdls_model.engine import Engine

    from .report import markdown, write_outputs
    from .runner import DEFAULT_THRESHOLDS, evaluate, standard_configs

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tasks = build_suite(args.suite, args.limit)
    try:
        engine = Engine.from_dir(args.model, device=device, dtype=args.dtype)
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"sdls bench eval: {exc}", file=sys.stderr)
        return 2
    configs = standard_configs(
        args.thresholds or DEFAULT_THRESHOLDS,
        reference=not args.no_reference,
        confidence=args.confidence,
        ends_anywhere=args.ends_anywhere,
    )
    say = lambda msg: print(msg, file=sys.stderr, flush=True)
    info = engine.describe()
    say(f"{args.suite}: {len(tasks)} tasks x {len(configs)} settings on {info['model']} ({device}, {info['dtype']})")
    report = evaluate(
        engine,
        tasks,
        configs,
        suite=args.suite,
        batch=args.batch,
        limits=Limits(seconds=args.time_limit, memory_mb=args.memory_mb),
        workers=args.workers,
        max_new_tokens=args.max_new_tokens,
        progress=say,
    )
    command = "sdls " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else ""
    paths = write_outputs(report, args.out or Path("out") / "eval" / args.suite, command)
    if args.json:
        print(json.dumps({**report.as_dict(), "outputs": {k: str(v) for k, v in paths.items()}}, indent=1))
    else:
        print(markdown(report, command))
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0 if report.checks["canonical_passed"] == report.checks["canonical_total"] else 1
