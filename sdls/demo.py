"""`sdls demo`: the product as a user sees it, through a real LSP client.

It starts `sdls serve` (which starts its model worker), opens a sample file, and prints what an
editor would show: ghost text for an inline completion, the edit behind a "Fill in stubs" code
action, and the repair a hover offers over a syntax error, each with its latency and the model's
tokens per forward pass.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from sdls_model.precision import add_dtype_argument

SAMPLE = """import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius ** 2

    def perimeter(self):
        pass


def total_area(shapes):
    total = 0
    for shape in shapes:
        total +=\x20
    return total


def describe(shape):
    print("shape with area", shape.area()
"""
# The completion point ends in a space, written \x20 above so that formatters keep it.
COMPLETE_AT = ("        total += ", 0)  # end of this line: an inline completion
STUB_LINE = "        pass"  # "Fill in stubs"
BROKEN_LINE = '    print("shape with area", shape.area()'  # hover fix-up: the call is never closed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    add_dtype_argument(parser)


def run(args) -> int:
    return asyncio.run(_demo(args))


def _model_summary(model_dir: Path) -> str:
    config = json.loads((model_dir / "config.json").read_text())
    card = model_dir / "MODEL_CARD.md"
    kind = config.get("model_type", "?")
    line = f"{model_dir} ({kind}, {config.get('n_layers', config.get('num_hidden_layers', '?'))} layers)"
    if card.exists():
        owed = [l.strip("-* ") for l in card.read_text().splitlines() if "owed" in l.lower()]
        if owed:
            line += f"\n       note: {owed[0]}"
    return line


def _line_col(text: str, needle: str, at_end: bool = True) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines()):
        if line == needle or line.startswith(needle):
            return number, len(needle) if at_end else len(line) - len(line.lstrip())
    raise ValueError(f"sample has no line {needle!r}")


def _apply(text: str, edits: list[lsp.TextEdit]) -> str:
    from sdls.lsp.positions import to_offset

    spans = [
        (
            to_offset(text, e.range.start.line, e.range.start.character),
            to_offset(text, e.range.end.line, e.range.end.character),
            e.new_text,
        )
        for e in edits
    ]
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _diff(before: str, after: str) -> str:
    import difflib

    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", n=1, lineterm="")
    return "\n".join("       " + line for line in list(lines)[2:]) or "       (no change)"


def _plain(value):
    """pygls hands back custom responses as nested namedtuples; make them dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


async def _stats(driver) -> dict:
    return _plain(await driver.stats())


async def _demo(args) -> int:
    from sdls.lsp.driver import LspDriver
    from sdls_model.checkpoint import CheckpointError, default_model_dir, validate_checkpoint

    model_dir = Path(args.model) if args.model else default_model_dir()
    problems = validate_checkpoint(model_dir)
    if problems:
        print(f"sdls demo: no usable model at {model_dir}:\n  " + "\n  ".join(problems[:5]))
        return 2
    print(f"model: {_model_summary(model_dir)}")
    workspace = Path(tempfile.mkdtemp(prefix="sdls-demo-"))
    path = workspace / "shapes.py"
    path.write_text(SAMPLE)
    uri = path.as_uri()
    print(f"file:  {path}\n")

    t0 = time.perf_counter()
    driver = await LspDriver.start(
        model_dir, options={"model": {"device": args.device, "dtype": args.dtype}}, root=workspace
    )
    try:
        await driver.open(uri, SAMPLE)
        print(
            f"server started and initialized in {(time.perf_counter() - t0) * 1000:.0f} ms "
            f"(the model loads in the worker on first use)"
        )

        # 1. Inline completion (ghost text) at the end of `total += `.
        line, col = _line_col(SAMPLE, COMPLETE_AT[0])
        timings = []
        for _ in range(2):  # the second request is what typing along a suggestion costs: the cache
            t = time.perf_counter()
            result = await driver.inline(uri, line, col)
            timings.append((time.perf_counter() - t) * 1000)
        record = ((await _stats(driver)).get("latencies") or [{}])[0]
        items = result.items if result else []
        per_forward = record.get("tokens", 0) / record["forwards"] if record.get("forwards") else 0
        print(
            f"\n[1] inline completion at line {line + 1}, column {col + 1}: {timings[0]:.0f} ms "
            f"(worker start + model load included), {record.get('forwards', 0)} forward passes, "
            f"{per_forward:.1f} tokens per forward; asked again: {timings[1]:.0f} ms"
        )
        if items:
            ghost = items[0].insert_text
            shown = ghost.replace("\n", "\n       ")
            print(f"       {COMPLETE_AT[0]}\x1b[2m{shown}\x1b[0m   <- ghost text")
        else:
            print(f"       (nothing offered: scope {record.get('scope', '?')}, source {record.get('source', '?')})")

        # 2. Code action: fill in the stub.
        line, col = _line_col(SAMPLE, STUB_LINE)
        actions = await driver.code_actions(uri, (line, 8), (line, 8))
        titles = [a.title for a in actions]
        print(f"\n[2] code actions at line {line + 1}: {titles}")
        chosen = next((a for a in actions if "stub" in a.title.lower()), actions[0] if actions else None)
        if chosen is not None:
            t = time.perf_counter()
            try:
                resolved = await driver.resolve(chosen)
            except JsonRpcException as exc:
                print(f"       '{chosen.title}': the server answered: {exc}")
                resolved = None
            ms = (time.perf_counter() - t) * 1000
        if chosen is not None and resolved is not None:
            change = resolved.edit.document_changes[0] if resolved.edit and resolved.edit.document_changes else None
            print(
                f"       '{chosen.title}' resolved in {ms:.0f} ms, bound to version "
                f"{change.text_document.version if change else '?'}:"
            )
            print(_diff(SAMPLE, _apply(SAMPLE, list(change.edits))) if change else "       (no edit)")

        # 3. Hover over the syntax error: the proposed repair, with a link that applies it.
        line, col = _line_col(SAMPLE, BROKEN_LINE)
        t = time.perf_counter()
        try:
            hover = await driver.hover(uri, line, len(BROKEN_LINE) - 1)
        except JsonRpcException as exc:
            print(f"       hover: the server answered: {exc}")
            hover = None
        ms = (time.perf_counter() - t) * 1000
        print(f"\n[3] hover over the unclosed call on line {line + 1} ({ms:.0f} ms):")
        text = hover.contents.value if hover and isinstance(hover.contents, lsp.MarkupContent) else "(no hover)"
        for hover_line in text.splitlines():
            print("       " + (hover_line if len(hover_line) < 120 else hover_line[:117] + "..."))

        stats = await _stats(driver)
        lat = [r for r in stats.get("latencies", []) if r.get("forwards")]
        print(
            f"\nserver: {stats.get('rss_mb', 0):.0f} MB resident; worker: {json.dumps(stats.get('worker_info') or {})}"
        )
        if lat:
            print(
                f"inline requests answered by the model: {len(lat)}, "
                f"median {sorted(r['ms'] for r in lat)[len(lat) // 2]:.0f} ms"
            )
    except CheckpointError as exc:
        print(f"sdls demo: {exc}")
        return 2
    finally:
        await driver.stop()
    return 0
