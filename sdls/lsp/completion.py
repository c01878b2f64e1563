"""Inline completion, the core: document + cursor -> cleaned completion text and the range it replaces.

No LSP types here: the server's handler and `sdls complete` both call `complete_at`, so a one-shot
completion is exactly what the editor would get.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sdls.syntax.cleanup import clean_completion
from sdls.syntax.scope import BLOCK, NONE, completion_scope
from sdls_model.jobs import InfillJob

from .completion_cache import CachedCompletion, CompletionCache
from .documents import OpenDocument
from .model_call import ModelCall, run_job
from .prompt import build_prompt


@dataclass
class InlineResult:
    text: str  # insert this...
    start: int  # ...over document[start:end] (end > start when closers are replaced)
    end: int
    source: str  # "model" | "cache" | "along" (typed along a shown suggestion)
    stats: dict = field(default_factory=dict)


@dataclass
class CompletionOutcome:
    result: InlineResult | None
    reason: str  # why there is no result, or what scope produced it
    scope: str = NONE
    stats: dict = field(default_factory=dict)  # model work done, even when the output was rejected


async def complete_at(
    doc: OpenDocument,
    offset: int,
    call: ModelCall,
    *,
    cache: CompletionCache | None = None,
    invoked: bool = False,
    header: str = "",
) -> CompletionOutcome:
    started = time.perf_counter()
    if doc.binary:
        return CompletionOutcome(None, "the document looks binary")
    scope = completion_scope(doc.syntax, offset, invoked)
    if scope.kind == NONE:
        return CompletionOutcome(None, scope.reason)
    prompt = build_prompt(doc.text, offset, call.budget.before, call.budget.after, header)
    if cache is not None:
        hit = cache.get(doc.uri, prompt.prefix, prompt.suffix)
        if hit is not None:
            stats = {"forwards": 0, "tokens": 0, "ms": round((time.perf_counter() - started) * 1e3, 2)}
            if not hit.text:  # deterministic decoding: the same prompt would be rejected again
                return CompletionOutcome(None, f"cached: {hit.reason}", scope.kind, stats)
            source = "along" if hit.along else "cache"
            return CompletionOutcome(
                InlineResult(hit.text, offset, offset + hit.replace_len, source, stats), scope.reason, scope.kind
            )
    job = InfillJob(
        prefix=prompt.prefix,
        suffix=prompt.suffix,
        max_new_tokens=call.budget.block_tokens if scope.kind == BLOCK else call.budget.line_tokens,
        settings=call.decode,
        session=doc.uri,
        single_line=scope.kind != BLOCK,
    )  # the engine stops at the line break: no wasted forwards
    result = await run_job(call, job, "inline", doc.syntax)
    stats = {
        "forwards": result.stats.forwards,
        "tokens": len(result.tokens),
        "tokens_per_forward": round(result.stats.tokens_per_forward, 3),
        "reused_tokens": result.stats.reused_tokens,
        "encoded_tokens": result.stats.encoded_tokens,
        "model_ms": round(result.stats.ms, 2),
        "ms": round((time.perf_counter() - started) * 1e3, 2),
    }
    cleaned = clean_completion(doc.syntax, offset, result.text, scope)
    if cleaned.rejected is not None:
        if cache is not None:
            cache.put(doc.uri, prompt.prefix, prompt.suffix, CachedCompletion("", 0, reason=cleaned.rejected))
        return CompletionOutcome(None, f"model output rejected: {cleaned.rejected}", scope.kind, stats)
    if cache is not None:
        cache.put(doc.uri, prompt.prefix, prompt.suffix, CachedCompletion(cleaned.text, cleaned.replace_end - offset))
    return CompletionOutcome(
        InlineResult(cleaned.text, offset, cleaned.replace_end, "model", stats), scope.reason, scope.kind, stats
    )
