"""`sdls` command line: one subcommand per module, imported only when it runs (fast start-up).

Each module named here provides `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sdls.demo", "open a sample file through a real LSP client and show what an editor would"),
    "serve": ("sdls.lsp.serve_command", "run the language server (stdio, or --tcp PORT on 127.0.0.1)"),
    "worker": ("sdls.worker.worker_command", "run the model worker that owns the warm model"),
    "service": ("sdls.service.service_command", "serve the model over HTTP (/infill, /v1/completions, sdls jobs)"),
    "complete": ("sdls.complete_command", "one-shot infill at a position of a file"),
    "fix": ("sdls.fix_command", "the fix-up a hover would offer for a line"),
    "models": ("sdls.models_command", "validate checkpoint directories and show what sdls will do with each"),
    "train": (
        "sdls.training.train_command",
        "train a model: corpus, tokenizer, mask then edit stage (--stage base), constrained order, on-policy",
    ),
}
BENCHMARKS: dict[str, tuple[str, str]] = {
    "engine": ("sdls_model.bench", "reference rule vs threshold decoding: tokens/forward, forwards/s, tokens/s"),
    "syntax": ("sdls.syntax.bench_syntax", "parse, reparse, scope and plan times on large files"),
    "lsp": ("sdls.lsp.bench_lsp", "replay typing through the real server: latency, cancellations, memory"),
    "nextedit": ("sdls.lsp.bench_nextedit", "replay real multi-site edits: right next edit, latency, forwards"),
    "service": (
        "sdls.service.bench_service",
        "editors typing against the worker, the HTTP service and Ray Serve replicas",
    ),
    "eval": ("sdls.evaluation.bench_eval", "HumanEval infill / repair, side by side over decoding settings"),
    "kernels": ("sdls_model.bench_decode", "decode step eager / graph / kernels vs the HBM floor (GPU)"),
    "stages": (
        "sdls.training.bench_stages",
        "the training stages' models side by side: tokens/forward, verifier pass, agreement, exact match",
    ),
}


def _add(sub, name: str, module: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(_module=module)
    try:
        importlib.import_module(module).add_arguments(parser)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            parser.set_defaults(_missing=f"`{name}` is not available in this build ({module} is missing)")
        else:
            raise


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdls", description="diffusion code models in the editor")
    sub = parser.add_subparsers(dest="command", required=True)
    # Only import the module of the subcommand being run, so `sdls serve` starts fast.
    wanted = argv[0] if argv else None
    for name, (module, help_text) in COMMANDS.items():
        if wanted in (None, name, "-h", "--help"):
            _add(sub, name, module, help_text)
        else:
            sub.add_parser(name, help=help_text)
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True)
    which = argv[1] if wanted == "bench" and len(argv) > 1 else None
    for name, (module, help_text) in BENCHMARKS.items():
        if wanted in (None, "bench", "-h", "--help") and which in (None, name, "-h", "--help"):
            _add(bench_sub, name, module, help_text)
        else:
            bench_sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"sdls: {args._missing}", file=sys.stderr)
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
