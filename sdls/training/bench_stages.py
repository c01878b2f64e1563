"""`sdls bench stages`: the models of each training stage side by side, over a threshold sweep.

For single-line holes in held-out files (the corpus' validation split), every model decodes each
hole with the engine (the product's decoder): once slowly (one token per step, the reference) and at
each threshold of the sweep. Per model and threshold:
- tokens per forward (the engine's count: answer tokens plus the end token, over forwards);
- verifier pass rate (`verifier.py`: the clean-up keeps it, the file parses, code not only a
  comment, and it agrees with the same model's slow decoding);
- agreement with the slow decoding (the first line, whitespace normalised);
- exact match with the held-out line.
Writes OUT.json, OUT.md and OUT.png (the curves of every model in one figure).

    sdls bench stages --model base=model/sdls_model/default --model order=runs/order/model \\
        --model onpolicy=runs/onpolicy/model --tasks 60
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path

THRESHOLDS = (0.3, 0.5, 0.7, 0.9, 0.97)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR", help="a stage's checkpoint")
    parser.add_argument("--tasks", type=int, default=60, help="held-out single-line holes")
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    parser.add_argument("--data", type=Path, nargs="+", help="corpus folders (default: this Python's stdlib)")
    parser.add_argument("--val-permille", type=int, default=10, help="the validation split, as in sdls train")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/seed_stages"), help="OUT.json, OUT.md, OUT.png")


def parse_models(specs: list[str]) -> dict[str, Path]:
    models: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--model {spec!r}: expected NAME=DIR")
        if name in models:
            raise ValueError(f"--model {name} given twice")
        if not (Path(path) / "config.json").is_file():
            raise ValueError(f"--model {spec!r}: {path} holds no checkpoint (no config.json)")
        models[name] = Path(path)
    return models


def holes(args):
    """Held-out single-line holes: (prefix, suffix, answer, file parses), spread over the files."""
    import random
    import sysconfig

    from sdls_model.train.corpus import Decontaminator, gather, humaneval_texts
    from sdls_model.train.evaluate import line_tasks

    from ..syntax.diagnostics import syntax_errors
    from ..syntax.document import SyntaxDocument

    dirs = args.data or [Path(sysconfig.get_paths()["stdlib"])]
    corpus = gather(dirs, args.val_permille, None, Decontaminator(humaneval_texts()), workers=1)
    texts = corpus.val or corpus.train
    rng = random.Random(args.seed)
    order = sorted(range(len(texts)), key=lambda _: rng.random())
    per_file = max(1, -(-args.tasks // max(1, len(texts))))
    out = []
    for i in order:
        parses = not syntax_errors(SyntaxDocument(texts[i], "python"))
        out += [(t.prefix, t.suffix, t.answer, parses) for t in line_tasks(texts[i], rng, per_file)]
        if len(out) >= args.tasks:
            break
    return out[: args.tasks], len(corpus.val), [str(d) for d in dirs]


def decode(engine, tasks, settings, max_new: int):
    from sdls_model.jobs import InfillJob

    results = []
    for i in range(0, len(tasks), 8):
        jobs = [InfillJob(p, s, max_new, settings, single_line=True) for p, s, _, _ in tasks[i : i + 8]]
        results += engine.run(jobs)
    return results


def first_line(text: str) -> str:
    return re.sub(r"\s+", " ", text.split("\n", 1)[0]).strip()


def measure(engine, tasks, verifiers, threshold: float | None, slow_texts, max_new: int) -> tuple[dict, list[str]]:
    from sdls_model.jobs import DecodeSettings

    settings = (
        DecodeSettings(rule="fixed", tokens_per_step=1) if threshold is None else DecodeSettings(threshold=threshold)
    )
    t0 = time.perf_counter()
    results = decode(engine, tasks, settings, max_new)
    seconds = time.perf_counter() - t0
    texts = [r.text for r in results]
    n = max(1, len(tasks))
    tokens, forwards = sum(r.stats.tokens_committed for r in results), sum(r.stats.forwards for r in results)
    slow = slow_texts if slow_texts is not None else texts
    return {
        "threshold": threshold,
        "tokens_per_forward": round(tokens / max(1, forwards), 3),
        "pass_rate": round(sum(v.check(t, s).passed for v, t, s in zip(verifiers, texts, slow)) / n, 3),
        "agreement": round(sum(first_line(t) == first_line(s) for t, s in zip(texts, slow)) / n, 3),
        "exact_match": round(sum(first_line(t) == first_line(a) for t, (_, _, a, _) in zip(texts, tasks)) / n, 3),
        "empty": round(sum(not first_line(t) for t in texts) / n, 3),
        "seconds": round(seconds, 1),
    }, texts


def run(args: argparse.Namespace) -> int:
    try:
        models = parse_models(args.model)
    except ValueError as exc:
        print(f"sdls bench stages: {exc}", file=sys.stderr)
        return 2
    if args.tasks < 1 or not all(0 < t <= 1 for t in args.thresholds):
        print("sdls bench stages: --tasks must be >= 1 and every threshold in (0, 1]", file=sys.stderr)
        return 2
    import torch

    from sdls_model.engine import Engine

    from .verifier import Verifier

    torch.set_num_threads(args.threads)
    try:
        tasks, val_files, dirs = holes(args)
    except FileNotFoundError as exc:
        print(f"sdls bench stages: {exc}", file=sys.stderr)
        return 2
    verifiers = [Verifier(p, s, file_parses=ok) for p, s, _, ok in tasks]
    report = {
        "command": "sdls bench stages " + " ".join(shlex.quote(a) for a in sys.argv[3:]),
        "tasks": len(tasks),
        "held_out_files": val_files,
        "data": dirs,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "models": {},
    }
    for name, path in models.items():
        engine = Engine.from_dir(path, device=args.device)
        slow, slow_texts = measure(engine, tasks, verifiers, None, None, args.max_new_tokens)
        rows = [measure(engine, tasks, verifiers, t, slow_texts, args.max_new_tokens)[0] for t in args.thresholds]
        report["models"][name] = {"path": str(path), "slow": slow, "sweep": rows}
        print(f"{name}: slow {json.dumps(slow)}", flush=True)
        for row in rows:
            print(f"{name}: {json.dumps(row)}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    plot(report, args.out.with_suffix(".png"))
    print(markdown(report))
    print(f"wrote {args.out.with_suffix('.json')}, .md and .png")
    return 0


def markdown(report: dict) -> str:
    lines = [
        f"`{report['command']}`: {report['tasks']} held-out single-line holes, engine on {report['device']} "
        f"({report['threads']} thread(s)).",
        "",
        "| model | threshold | tokens/forward | verifier pass | agreement with slow | exact match | empty |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        for row in [m["slow"], *m["sweep"]]:
            t = "slow (1/step)" if row["threshold"] is None else f"{row['threshold']:g}"
            lines.append(
                f"| {name} | {t} | {row['tokens_per_forward']:.2f} | {100 * row['pass_rate']:.1f}% | "
                f"{100 * row['agreement']:.1f}% | {100 * row['exact_match']:.1f}% | {100 * row['empty']:.1f}% |"
            )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (
        ("pass_rate", "verifier pass rate"),
        ("agreement", "agreement with slow decoding"),
        ("exact_match", "exact match"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for name, m in report["models"].items():
        rows = sorted(m["sweep"], key=lambda r: r["tokens_per_forward"])
        for ax, (key, label) in zip(axes, keys):
            line = ax.plot([r["tokens_per_forward"] for r in rows], [r[key] for r in rows], "o-", label=name)[0]
            for r in rows:
                ax.annotate(f"{r['threshold']:g}", (r["tokens_per_forward"], r[key]), fontsize=7, alpha=0.7)
            ax.plot([m["slow"]["tokens_per_forward"]], [m["slow"][key]], "x", color=line.get_color())
            ax.set_xlabel("tokens per forward (threshold sweep; x: slow decoding)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"sdls training stages side by side ({report['tasks']} held-out single-line holes)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
