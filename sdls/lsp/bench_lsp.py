"""`sdls bench lsp`: replay typing through the real server and print latency, cancellations, waste, memory.

An LSP client (pygls) starts `sdls serve` (which starts its worker), opens real source files, and for
a sample of lines deletes the line's code and types it back at a fixed rate. Like an editor with
automatic inline completion, every keystroke sends didChange, cancels the in-flight request and sends
a new one; after each line it pauses so the last request settles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from sdls_model.precision import add_dtype_argument

from .driver import LspDriver

DEFAULT_FILES = ("textwrap.py", "json/decoder.py", "shlex.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    add_dtype_argument(parser)
    parser.add_argument(
        "--files",
        nargs="*",
        default=None,
        help=f"source files to type in (default: {', '.join(DEFAULT_FILES)} from the stdlib)",
    )
    parser.add_argument("--lines", type=int, default=4, help="lines typed per file")
    parser.add_argument("--rate", type=float, default=10.0, help="keystrokes per second")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of rest after each line")
    parser.add_argument("--in-process", action="store_true", help="engine inside the server (no worker)")
    parser.add_argument("--threshold", type=float, default=None, help="completion.threshold (default: the server's)")
    parser.add_argument("--max-tokens", type=int, default=None, help="completion.maxTokens (default: the server's)")
    parser.add_argument("--max-context", type=int, default=None, help="model.maxContext (default: the server's)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    cancelled: int = 0
    stale: int = 0
    failed: int = 0
    shown: int = 0  # answered with a non-empty suggestion
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def pick_lines(text: str, count: int, language: str | None = "python") -> list[int]:
    """Evenly spaced lines that start a statement (not docstrings, comments or continuations), 12-80 chars."""
    from sdls.syntax import SyntaxDocument

    doc = SyntaxDocument(text, language)
    lines = text.split("\n")
    good, offset = [], 0
    for i, line in enumerate(lines):
        start = offset + len(line) - len(line.lstrip())
        offset += len(line) + 1
        if i <= 5 or not line.startswith((" ", "\t")) or not 12 <= len(line.strip()) <= 80:
            continue
        if doc.tree is not None and not _starts_statement(doc, start):
            continue
        good.append(i)
    if not good:
        return []
    step = max(1, len(good) // (count + 1))
    return [good[min(len(good) - 1, step * (k + 1))] for k in range(count)]


def _starts_statement(doc, offset: int) -> bool:
    node = doc.tree.root_node.descendant_for_byte_range(doc.byte_of(offset), doc.byte_of(offset) + 1)
    while node is not None:
        if node.type in ("string", "comment", "ERROR"):
            return False
        if node.start_byte == doc.byte_of(offset) and node.type.endswith(("statement", "assignment", "definition")):
            return True
        node = node.parent
    return False


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _settle(tally: Tally, future: asyncio.Future, sent_at: float) -> None:
    try:
        result = await future
    except JsonRpcException as exc:
        if exc.code in (lsp.LSPErrorCodes.RequestCancelled, lsp.LSPErrorCodes.ServerCancelled):
            tally.cancelled += 1
        elif exc.code == lsp.LSPErrorCodes.ContentModified:
            tally.stale += 1
        else:
            tally.failed += 1
            tally.errors.append(exc.message)
        return
    tally.answered += 1
    tally.latencies_ms.append((time.perf_counter() - sent_at) * 1e3)
    if result is not None and result.items:
        tally.shown += 1


async def type_line(
    driver: LspDriver, uri: str, line_no: int, line: str, rate: float, tally: Tally, pending: list[asyncio.Task]
) -> None:
    indent = len(line) - len(line.lstrip())
    body = line[indent:]
    driver.change(uri, (line_no, indent), (line_no, len(line)), "")  # the user deletes the line's code
    await asyncio.sleep(0.3)
    in_flight: str | None = None
    for k, ch in enumerate(body):
        tick = time.perf_counter()
        driver.change(uri, (line_no, indent + k), (line_no, indent + k), ch)
        if in_flight is not None:
            driver.cancel(in_flight)  # as editors do on each keystroke
        in_flight, future = driver.inline_request(uri, line_no, indent + k + 1)
        tally.sent += 1
        pending.append(asyncio.ensure_future(_settle(tally, future, time.perf_counter())))
        await asyncio.sleep(max(0.0, 1.0 / rate - (time.perf_counter() - tick)))


async def run_bench(args: argparse.Namespace) -> dict:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [Path(f) for f in args.files] if args.files else [stdlib / f for f in DEFAULT_FILES]
    options = {
        "model": {"path": args.model, "device": args.device, "dtype": args.dtype},
        "worker": {"inProcess": args.in_process},
        "completion": {},
    }
    for key, value in (("threshold", args.threshold), ("maxTokens", args.max_tokens)):
        if value is not None:
            options["completion"][key] = value
    if args.max_context is not None:
        options["model"]["maxContext"] = args.max_context
    driver = await LspDriver.start(args.model, options)
    tally, pending = Tally(), []
    try:
        warm_uri = "file:///bench/warmup.py"
        await driver.open(warm_uri, "def warm(x):\n    return \n")
        await driver.inline(warm_uri, 1, 11)  # starts the worker and loads the model, untimed
        before = await driver.stats()
        started = time.perf_counter()
        keystrokes = 0
        for path in files:
            text = path.read_text(encoding="utf-8")
            uri = path.resolve().as_uri()
            await driver.open(uri, text)
            lines = text.split("\n")
            for line_no in pick_lines(text, args.lines):
                await type_line(driver, uri, line_no, lines[line_no], args.rate, tally, pending)
                keystrokes += len(lines[line_no].strip())
                await asyncio.sleep(args.pause)
        await asyncio.gather(*pending)
        wall = time.perf_counter() - started
        after = await driver.stats()
    finally:
        await driver.stop()
    return _figures(args, files, tally, before, after, keystrokes, wall)


def _lane(stats, key: str) -> float:
    worker = getattr(stats, "worker", None)
    lanes = getattr(worker, "lanes", None) if worker else None
    return getattr(lanes.inline, key, 0) if lanes else 0


def _figures(args, files, tally: Tally, before, after, keystrokes: int, wall: float) -> dict:
    records = list(after.latencies[len(before.latencies) :])
    single = [r.ms for r in records if r.scope == "line"]
    model_calls = [r.ms for r in records if r.source in ("model", "none") and r.forwards]
    forwards = _lane(after, "forwards") - _lane(before, "forwards")
    wasted = _lane(after, "forwards_wasted") - _lane(before, "forwards_wasted")
    worker = getattr(after, "worker", None)
    model = getattr(getattr(after, "worker_info", None), "model", None)
    return {
        "model": getattr(model, "model", args.model),
        "parameters": getattr(model, "parameters", None),
        "settings": {"threshold": args.threshold, "max_tokens": args.max_tokens, "max_context": args.max_context},
        "files": [str(f) for f in files],
        "keystrokes": keystrokes,
        "rate_per_s": args.rate,
        "wall_s": round(wall, 1),
        "requests": {
            "sent": tally.sent,
            "answered": tally.answered,
            "cancelled": tally.cancelled,
            "stale": tally.stale,
            "failed": tally.failed,
            "shown": tally.shown,
            "cancelled_share": round(tally.cancelled / tally.sent, 3) if tally.sent else 0.0,
        },
        "latency_ms": {
            "p50": round(percentile(tally.latencies_ms, 50), 1),
            "p95": round(percentile(tally.latencies_ms, 95), 1),
        },
        "single_line_server_ms": {
            "n": len(single),
            "p50": round(percentile(single, 50), 1),
            "p95": round(percentile(single, 95), 1),
        },
        "model_call_server_ms": {
            "n": len(model_calls),
            "p50": round(percentile(model_calls, 50), 1),
            "p95": round(percentile(model_calls, 95), 1),
        },
        "model_steps": {
            "forwards": forwards,
            "wasted": wasted,
            "wasted_share": round(wasted / forwards, 3) if forwards else 0.0,
        },
        "context_tokens": {
            "reused": sum(getattr(r, "reused_tokens", 0) for r in records),
            "encoded": sum(getattr(r, "encoded_tokens", 0) for r in records),
        },
        "cache": {
            "hits": after.cache.hits - before.cache.hits,
            "typing_along": after.cache.along_hits - before.cache.along_hits,
        },
        "memory_mb": {
            "server": round(after.rss_mb, 1),
            "worker": round(getattr(worker, "rss_mb", 0.0) if worker else 0.0, 1),
            "server_peak": round(after.peak_rss_mb, 1),
            "worker_peak": round(getattr(worker, "peak_rss_mb", 0.0) if worker else 0.0, 1),
        },
        "errors": sorted(set(tally.errors))[:5],
    }


def report(fig: dict) -> str:
    r, lat, s1, mc, st, mem = (
        fig["requests"],
        fig["latency_ms"],
        fig["single_line_server_ms"],
        fig["model_call_server_ms"],
        fig["model_steps"],
        fig["memory_mb"],
    )
    total = mem["server"] + mem["worker"]
    lines = [
        f"sdls bench lsp — model {fig['model']} ({fig['parameters']} parameters); overrides: "
        f"{', '.join(f'{k}={v}' for k, v in fig['settings'].items() if v is not None) or 'none'}",
        f"typed {fig['keystrokes']} keystrokes at {fig['rate_per_s']:g}/s over {len(fig['files'])} files in {fig['wall_s']} s",
        f"requests  sent {r['sent']}  answered {r['answered']}  shown {r['shown']}  cancelled {r['cancelled']} "
        f"({100 * r['cancelled_share']:.1f}%)  stale {r['stale']}  failed {r['failed']}",
        f"latency (client, answered)      p50 {lat['p50']:.1f} ms   p95 {lat['p95']:.1f} ms",
        f"single-line (server, n={s1['n']})     p50 {s1['p50']:.1f} ms   p95 {s1['p95']:.1f} ms",
        f"model calls (server, n={mc['n']})     p50 {mc['p50']:.1f} ms   p95 {mc['p95']:.1f} ms",
        f"model steps  forwards {st['forwards']}  wasted on cancelled jobs {st['wasted']} "
        f"({100 * st['wasted_share']:.1f}%)",
        f"context  {_share(fig['context_tokens'])} of context tokens served from the warm cache "
        f"(reused {fig['context_tokens']['reused']}, encoded {fig['context_tokens']['encoded']})",
        f"cache  hits {fig['cache']['hits']}  typing-along {fig['cache']['typing_along']}",
        f"memory  server {mem['server']:.0f} MB + worker {mem['worker']:.0f} MB = {total:.0f} MB "
        f"(peaks {mem['server_peak']:.0f} + {mem['worker_peak']:.0f} MB)",
    ]
    if fig["errors"]:
        lines.append("errors: " + "; ".join(fig["errors"]))
    return "\n".join(lines)


def _share(ctx: dict) -> str:
    total = ctx["reused"] + ctx["encoded"]
    return f"{100 * ctx['reused'] / total:.1f}%" if total else "n/a"


def run(args: argparse.Namespace) -> int:
    figures = asyncio.run(run_bench(args))
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0 if figures["requests"]["failed"] == 0 else 1
