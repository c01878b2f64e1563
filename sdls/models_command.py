"""`sdls models PATH...`: validate checkpoint directories (or GGUF files) and say what sdls will do with each.

Nothing is loaded: config.json, the tokenizer files and the safetensors headers (a GGUF file's
metadata and tensor index) say everything (sdls_model.checkpoint_report). Exit status 0 when every directory would load, 1 when one is refused.
"""

from __future__ import annotations

import argparse
import json
import sys

from sdls_model.precision import add_dtype_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directories", nargs="+", metavar="PATH", help="checkpoint directories or GGUF files")
    parser.add_argument(
        "--device", default="cpu", help="the device to size the memory for (dtype 'auto' depends on it)"
    )
    add_dtype_argument(parser)
    parser.add_argument(
        "--max-context", type=int, default=1024, help="context tokens per job the KV cache is sized for (as the worker)"
    )
    parser.add_argument("--max-batch", type=int, default=None, help="batch rows (default: the engine's)")
    parser.add_argument("--json", action="store_true", help="one JSON object per directory, in a list")


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def count(n: int) -> str:
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _tok(t: dict | None) -> str:
    return "-" if t is None else f"{t['id']} {t['text']!r}"


def _source(report: dict) -> str:
    return "GGUF metadata" if report["format"].startswith("gguf") else "config.json"


def lines(report: dict) -> list[str]:
    verdict = "loads" if report["ok"] else "cannot be loaded"
    title = report.get("title")
    out = [f"{report['directory']}: {title + ' — ' if title else ''}{verdict}"]
    if "family" in report:
        a = report["architecture"]
        m = report["memory"]
        attention = report["attention"].replace("_", "-")
        if report["block_align_text"]:
            attention += f", blocks of {report['block_size']}: {report['block_align_text']}"
        if report["sub_block_size"]:
            attention += f"; committed {report['sub_block_size']} at a time"
        t = report["tokens"]
        rows = [
            ("family", f"{report['family']} (format {report['format']}, detected from {_source(report)})"),
            ("attention", attention),
            ("context reuse", report["context_reuse"]),
            ("infill", report["infill_text"]),
            (
                "decoding",
                f"threshold {report['threshold']}; "
                + ("row i-1 predicts token i (logits shifted)" if report["logit_shift"] else "row i predicts token i"),
            ),
            ("tokens", f"mask {_tok(t['mask'])}, end {_tok(t['end'])}; stops on {', '.join(map(_tok, t['stops']))}"),
            (
                "model",
                f"{a['layers']} layers, d_model {a['d_model']}, {a['heads']} heads / {a['kv_heads']} kv heads of "
                f"{a['head_dim']}, ffn {a['ffn_size']}, vocab {a['vocab_size']}"
                + (", q/k norm" if a["qk_norm"] else "")
                + (", q/k/v bias" if a["qkv_bias"] else "")
                + (", tied head" if a["tied_embeddings"] else ", untied head"),
            ),
            (
                "parameters",
                f"{count(report['parameters'])} (stored as {', '.join(report['stored_dtypes']) or '?'}; "
                f"computes in {report['compute_dtype']} on {report['device']}; weights {report['weights']})",
            ),
            (
                "memory",
                f"{size(m['total_bytes'])} = weights {size(m['weights_bytes'])} + KV cache {size(m['kv_cache_bytes'])} "
                f"({m['kv_cache_slots']} slots x {m['kv_cache_tokens_per_slot']} tokens at --max-context "
                f"{m['max_context']})",
            ),
        ]
        if t["fim"]:
            rows.insert(4, ("fim tokens", ", ".join(f"{k} {_tok(v)}" for k, v in t["fim"].items())))
        out += [f"  {label:<14}{text}" for label, text in rows]
        out += [f"  {'note':<14}{note}" for note in report["notes"]]
    elif "format" in report:
        out.append(f"  {'format':<14}{report['format']}")
    out += [f"  - {problem}" for problem in report["problems"]]
    return out


def run(args: argparse.Namespace) -> int:
    from sdls_model.checkpoint_report import describe_checkpoint

    reports = [
        describe_checkpoint(
            d, device=args.device, dtype=args.dtype, max_context=args.max_context, max_batch=args.max_batch
        )
        for d in args.directories
    ]
    if args.json:
        json.dump(reports, sys.stdout, indent=2)
        print()
    else:
        print("\n\n".join("\n".join(lines(r)) for r in reports))
    return 0 if all(r["ok"] for r in reports) else 1
