"""`sdls fix FILE --line L`: the fix-up a hover on that line would offer (same core call as the server)."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from sdls.oneshot import OneShotError, add_common_arguments, load_document, one_shot_settings, open_one_shot_backend


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file")
    parser.add_argument("--line", type=int, required=True, help="0-based line")
    add_common_arguments(parser)


def target_offset(doc, line: int) -> int:
    """Where a hover on `line` lands: the first syntax error on it, else its first non-blank character."""
    from sdls.syntax import syntax_errors
    start = doc.offset(line, 0)
    end = doc.text.find("\n", start)
    end = len(doc.text) if end < 0 else end
    for issue in syntax_errors(doc.syntax):
        if issue.start <= end and max(issue.end, issue.start + 1) > start:
            return max(issue.start, start)
    text = doc.text[start:end]
    return start + len(text) - len(text.lstrip())


async def fix_file(args: argparse.Namespace) -> dict:
    from sdls.lsp.completion import decode_settings
    from sdls.lsp.edits import Budget
    from sdls.lsp.fixups import propose_fixup
    from sdls.lsp.positions import PositionError
    from sdls.worker.client import WorkerError

    settings = one_shot_settings(args)
    doc = load_document(args.file, args.language, settings)
    try:
        offset = target_offset(doc, args.line)
    except PositionError as exc:
        raise OneShotError(f"{args.file}: {exc}") from None
    backend = await open_one_shot_backend(settings)
    c = settings.completion
    try:
        started = time.perf_counter()
        fix = await propose_fixup(doc.syntax, offset, backend=backend, settings=settings.actions,
                                  decode=decode_settings(c),
                                  budget=Budget(c.prefix_chars, c.suffix_chars, settings.actions.max_tokens),
                                  validate=settings.actions.validate, use_doubt=settings.hover.doubt)
        ms = (time.perf_counter() - started) * 1e3
    except WorkerError as exc:
        raise OneShotError(f"cannot load the model: {exc}") from None
    finally:
        await backend.close()
    if fix is None:
        return {"problem": None, "edits": [], "diff": "", "reason": "nothing to fix on this line", "ms": round(ms, 1)}
    edits = [{"start": doc.position(e.start), "end": doc.position(e.end), "newText": e.new_text} for e in fix.edits]
    return {"problem": fix.problem, "edits": edits, "diff": fix.diff, "reason": fix.reason, "ms": round(ms, 1)}


def run(args: argparse.Namespace) -> int:
    try:
        out = asyncio.run(fix_file(args))
    except OneShotError as exc:
        print(f"sdls: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    elif out["edits"]:
        print(f"{out['problem']}\n{out['diff']}")
    else:
        print(f"sdls: no fix-up: {out['problem'] or ''} {out['reason']}".strip(), file=sys.stderr)
    return 0 if out["edits"] else 1
