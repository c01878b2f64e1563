"""`sdls complete FILE --line L --col C`: one inline completion, through the server's own code path.

Same core call (`complete_at`), same settings defaults, same prompt and cross-file context as
`sdls serve`. Positions are LSP's: 0-based line, UTF-16 column.
"""

from __future__ import annotations

import argparse
import time

from sdls.lsp.positions import PositionError
from sdls.oneshot import (
    OneShotError,
    add_arguments_for,
    cross_file_header,
    load_document,
    model_backend,
    one_shot_settings,
    run_one_shot,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments_for(parser, column=True)


async def complete_file(args: argparse.Namespace) -> dict:
    from sdls.lsp.completion import complete_at
    from sdls.lsp.completion_cache import CompletionCache
    from sdls.lsp.model_call import ModelCall

    settings = one_shot_settings(args)
    doc = load_document(args.file, args.language, settings)
    try:
        offset = doc.offset(args.line, args.col)
    except PositionError as exc:
        raise OneShotError(f"{args.file}: {exc}") from None
    async with model_backend(settings) as backend:
        started = time.perf_counter()
        call = ModelCall.from_settings(settings, backend)
        header = cross_file_header(doc, settings)
        outcome = await complete_at(doc, offset, call, cache=CompletionCache(), invoked=True, header=header)
        ms = (time.perf_counter() - started) * 1e3
    result = outcome.result
    return {
        "text": result.text if result else "",
        "forwards": outcome.stats.get("forwards", 0),
        "tokens": outcome.stats.get("tokens", 0),
        "ms": round(ms, 1),
        "scope": outcome.scope,
        "replace_end": doc.position(result.end) if result else None,
        "reason": outcome.reason if result is None else "",
    }


def run(args: argparse.Namespace) -> int:
    # No completion is a normal answer here (exit 0): editors' scripts call this at every position.
    status = run_one_shot(
        complete_file,
        args,
        lambda out: (out["text"], True) if out["text"] else (f"sdls: no completion: {out['reason']}", False),
    )
    return 0 if status == 1 else status
