"""`sdls fix FILE --line L`: the fix-up a hover on that line would offer (same core call as the server)."""

from __future__ import annotations

import argparse
import time

from sdls.oneshot import (
    OneShotError,
    add_arguments_for,
    load_document,
    model_backend,
    one_shot_settings,
    run_one_shot,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments_for(parser, column=False)


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
    from sdls.lsp.fixups import propose_fixup
    from sdls.lsp.model_call import ModelCall
    from sdls.lsp.positions import PositionError

    settings = one_shot_settings(args)
    doc = load_document(args.file, args.language, settings)
    try:
        offset = target_offset(doc, args.line)
    except PositionError as exc:
        raise OneShotError(f"{args.file}: {exc}") from None
    async with model_backend(settings) as backend:
        started = time.perf_counter()
        call = ModelCall.from_settings(settings, backend)
        fix = await propose_fixup(doc.syntax, offset, call, use_doubt=settings.hover.doubt)
        ms = (time.perf_counter() - started) * 1e3
    if fix is None:
        return {"problem": None, "edits": [], "diff": "", "reason": "nothing to fix on this line", "ms": round(ms, 1)}
    edits = [{"start": doc.position(e.start), "end": doc.position(e.end), "newText": e.new_text} for e in fix.edits]
    return {"problem": fix.problem, "edits": edits, "diff": fix.diff, "reason": fix.reason, "ms": round(ms, 1)}


def run(args: argparse.Namespace) -> int:
    return run_one_shot(
        fix_file,
        args,
        lambda out: (
            (f"{out['problem']}\n{out['diff']}", True)
            if out["edits"]
            else (f"sdls: no fix-up: {out['problem'] or ''} {out['reason']}".strip(), False)
        ),
    )
