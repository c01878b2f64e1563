"""`sdls train`: the first two stages (sdls_model.train.cli) and Seed Diffusion's last two.

`--stage base` (the default) is `sdls_model.train.cli`: corpus, tokenizer, mask then edit stage.
`--stage order` and `--stage onpolicy` continue from a checkpoint (`--init-from`, default the
shipped model); they live here because they need tree-sitter and the server's clean-up rules.
"""

from __future__ import annotations

import argparse

from sdls_model.train import cli as base

STAGES = ("base", "order", "onpolicy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    base.add_arguments(parser)
    parser.add_argument(
        "--stage",
        choices=STAGES,
        default="base",
        help="base: train from the corpus (mask, then edit stage); order: constrained-order trajectories; "
        "onpolicy: step reduction guarded by the verifier (both continue from --init-from, default the shipped model)",
    )
    later = parser.add_argument_group("order / onpolicy stages")
    later.add_argument("--spans", type=int, default=128, help="training spans (order) or prompts (onpolicy)")
    later.add_argument("--span-blocks", type=int, help="middle blocks of an order-stage span (default: the preset's)")
    later.add_argument("--trajectories", type=int, default=4, help="trajectories sampled per span (order)")
    later.add_argument("--order-steps", type=int, default=8, help="steps per block when sampling trajectories")
    later.add_argument("--order-temperature", type=float, default=1.0, help="temperature of the sampled orders")
    later.add_argument(
        "--def-use-penalty", type=float, default=0.5, help="score lost per use committed before its declaration (nats)"
    )
    later.add_argument("--fast-steps", type=int, default=4, help="the low step budget per block (onpolicy)")


def check(args) -> str | None:
    positive = {"spans": args.spans, "trajectories": args.trajectories, "order_steps": args.order_steps}
    positive["fast_steps"] = args.fast_steps
    bad = [f"--{k.replace('_', '-')} must be >= 1 (got {v})" for k, v in positive.items() if v < 1]
    if args.order_temperature < 0:
        bad.append(f"--order-temperature must be >= 0 (got {args.order_temperature})")
    if args.steps is not None and args.steps < 0:
        bad.append(f"--steps must be >= 0 (got {args.steps})")
    return "; ".join(bad) or None


def run(args: argparse.Namespace) -> int:
    if args.stage == "base":
        return base.run(args)
    problem = check(args)
    if problem:
        print(f"sdls train: {problem}")
        return 2
    from sdls_model.train.presets import PRESETS

    if args.stage == "order":
        from .order import run as run_stage
    else:
        from .onpolicy import run as run_stage
    try:
        return run_stage(args, PRESETS[args.preset])
    except (ValueError, FileNotFoundError) as exc:  # bad checkpoint, missing corpus folder, ...
        print(f"sdls train --stage {args.stage}: {exc}")
        return 2
