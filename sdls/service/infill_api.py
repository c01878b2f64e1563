"""llama.cpp's `POST /infill`, as llama.vim and llama.vscode send it.

Request fields used: `input_prefix`, `input_suffix`, `prompt` (the cursor line before the cursor,
written after the prefix), `input_extra` ([{filename, text, time?}]: chunks of other files, put
before the prefix as commented excerpts), `n_predict` (-1: as many as the engine allows; 0: a cache
warm-up, answered at once), `n_indent`, `stop`, `t_max_predict_ms` (a deadline: once passed, the text
ends at its last line break, checked as each block is committed), `cache_prompt` (keep the context
warm in an engine session named after the client and `id_slot`), `n_cmpl` (several completions:
the answer is then an array), `temperature`, `top_p`, `seed`, `stream`, `response_fields`.
Accepted and ignored: `top_k`, `samplers`, `t_max_prompt_ms` (the context is encoded inside the
first denoising step), `lora`, `id_slot` beyond naming the session.

A warm-up (`n_predict: 0`) does no model work: sdls orders the context suffix first, so extra
context encoded alone is not a prefix of the next request's context and could not be reused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sdls_model.jobs import DecodeSettings, InfillJob

from . import fields
from .errors import ApiError
from .generation import Outcome, generate
from .served_model import ServedModel
from .text_stream import TextStream

MAX_EXTRA_CHUNKS = 256
MAX_COMPLETIONS = 8
_COMMENT = {".py": "#", ".rb": "#", ".sh": "#", ".toml": "#", ".yaml": "#", ".yml": "#", ".lua": "--", ".sql": "--"}


@dataclass
class InfillRequest:
    prefix: str  # what the engine sees before the cursor: extra context, input_prefix, prompt
    suffix: str
    n_predict: int  # 0 = warm-up
    n_indent: int
    stops: list[str]
    deadline_s: float | None
    cache_prompt: bool
    id_slot: int
    n_cmpl: int
    settings: DecodeSettings
    stream: bool
    response_fields: list[str] | None


def extra_context(chunks: Any) -> str:
    """input_extra as commented excerpts, one per chunk, in the order given."""
    if chunks is None:
        return ""
    if not isinstance(chunks, list) or len(chunks) > MAX_EXTRA_CHUNKS:
        raise ApiError(400, f"field 'input_extra' must be a list of at most {MAX_EXTRA_CHUNKS} {{filename, text}}")
    parts = []
    for i, chunk in enumerate(chunks):
        if not isinstance(chunk, dict):
            raise ApiError(400, f"input_extra[{i}] must be an object {{filename, text}}")
        name = fields.text(chunk, "filename", "", max_chars=4096)
        body = fields.text(chunk, "text")
        if not body:
            continue
        suffix = name[name.rfind(".") :] if "." in name else ""
        mark = _COMMENT.get(suffix.lower(), "//")
        parts.append(f"{mark} {name}:\n{body}" + ("" if body.endswith("\n") else "\n") + "\n")
    return "".join(parts)


def parse_infill(data: dict, model: ServedModel) -> InfillRequest:
    n_predict = fields.integer(data, "n_predict", -1, -1, 1_000_000)
    if n_predict < 0 or n_predict > model.max_new_tokens:
        n_predict = model.max_new_tokens
    deadline_ms = fields.integer(data, "t_max_predict_ms", 0, 0, 3_600_000)
    response_fields = data.get("response_fields")
    if response_fields is not None and (
        not isinstance(response_fields, list) or not all(isinstance(f, str) for f in response_fields)
    ):
        raise ApiError(400, "field 'response_fields' must be a list of strings")
    try:
        settings = DecodeSettings(
            temperature=fields.number(data, "temperature", 0.0, 0.0, 100.0),
            top_p=fields.number(data, "top_p", 1.0, 0.0, 1.0) or 1.0,
            seed=fields.integer(data, "seed", 0, -1, 2**63 - 1) % 2**32,
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return InfillRequest(
        prefix=extra_context(data.get("input_extra")) + fields.text(data, "input_prefix") + fields.text(data, "prompt"),
        suffix=fields.text(data, "input_suffix"),
        n_predict=n_predict,
        n_indent=fields.integer(data, "n_indent", 0, 0, 1024),
        stops=fields.stop_strings(data),
        deadline_s=deadline_ms / 1000 if deadline_ms else None,
        cache_prompt=fields.flag(data, "cache_prompt", True),
        id_slot=fields.integer(data, "id_slot", -1, -1, 1 << 20),
        n_cmpl=fields.integer(data, "n_cmpl", 1, 1, MAX_COMPLETIONS),
        settings=settings,
        stream=fields.flag(data, "stream", False),
        response_fields=response_fields,
    )


def infill_job(req: InfillRequest, session: str | None, index: int = 0) -> InfillJob:
    settings = req.settings
    if index and settings.temperature > 0:  # several samples: one seed each
        settings = DecodeSettings(temperature=settings.temperature, top_p=settings.top_p, seed=settings.seed + index)
    return InfillJob(req.prefix, req.suffix, req.n_predict, settings, session=session if req.cache_prompt else None)


def answer(req: InfillRequest, model: ServedModel, outcome: Outcome | None, truncated: bool, index: int = 0) -> dict:
    """llama.cpp's completion object (outcome None: a warm-up that generated nothing)."""
    stats = outcome.result.stats if outcome else None
    predicted_ms = stats.ms if stats else 0.0
    predicted_n = outcome.tokens if outcome else 0
    context = stats.context_tokens if stats else 0
    timings = {
        # The context is encoded inside the first denoising step, so there is no separate prompt time:
        # prompt_ms and the rates derived from it are left out rather than made up.
        "prompt_n": stats.encoded_tokens if stats else 0,
        "predicted_n": predicted_n,
        "predicted_ms": round(predicted_ms, 3),
        "predicted_per_token_ms": round(predicted_ms / predicted_n, 3) if predicted_n else 0.0,
        "predicted_per_second": round(predicted_n * 1e3 / predicted_ms, 3) if predicted_n and predicted_ms else 0.0,
    }
    text = outcome.text if outcome else ""
    return {
        "index": index,
        "content": text,
        "id_slot": req.id_slot,
        "stop": True,
        "model": model.name,
        "tokens_predicted": predicted_n,
        "tokens_evaluated": context,
        "tokens_cached": stats.reused_tokens if stats else 0,
        "truncated": truncated,
        "has_new_line": "\n" in text,
        "stop_type": outcome.stop_type if outcome else "limit",
        "stopping_word": outcome.stopping_word if outcome else "",
        "generation_settings": {
            "n_predict": req.n_predict,
            "n_indent": req.n_indent,
            "temperature": req.settings.temperature,
            "top_p": req.settings.top_p,
            "stop": req.stops,
            "t_max_predict_ms": round(req.deadline_s * 1000) if req.deadline_s else 0,
        },
        "timings": timings,
    }


def select_fields(body: dict, wanted: list[str] | None) -> dict:
    """llama.cpp's response_fields: only these, a path `a/b` read from body["a"]["b"] and kept under the
    key "a/b" (as llama.cpp does); missing ones are left out."""
    if wanted is None:
        return body
    picked = {}
    for path in wanted:
        value: Any = body
        for part in path.split("/"):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            if path:
                picked[path] = value
    return picked


async def truncated(req: InfillRequest, model: ServedModel) -> bool:
    """Whether the engine cuts this prompt to its context budget (tokenized off the event loop: a
    prompt can be a megabyte)."""
    tokens = await asyncio.to_thread(lambda: model.count_tokens(req.prefix) + model.count_tokens(req.suffix))
    return tokens > model.context_budget


async def complete_one(req: InfillRequest, model: ServedModel, session: str | None, index: int = 0) -> dict:
    if req.n_predict == 0:
        return answer(req, model, None, await truncated(req, model), index)
    stream = TextStream(req.stops, req.n_indent)
    outcome = None
    async for item in generate(model, infill_job(req, session, index), stream, req.deadline_s):
        if isinstance(item, Outcome):
            outcome = item
    return answer(req, model, outcome, await truncated(req, model), index)


async def stream_one(req: InfillRequest, model: ServedModel, session: str | None) -> AsyncIterator[dict]:
    """llama.cpp's stream: {index, content: delta, stop: false} chunks, then the whole answer object with
    content "" and stop true."""
    outcome = None
    if req.n_predict:
        stream = TextStream(req.stops, req.n_indent)
        async for item in generate(model, infill_job(req, session), stream, req.deadline_s):
            if isinstance(item, Outcome):
                outcome = item
            else:
                yield {"index": 0, "content": item, "stop": False}
    final = answer(req, model, outcome, await truncated(req, model))
    yield select_fields({**final, "content": ""}, req.response_fields)


async def complete(req: InfillRequest, model: ServedModel, session: str | None) -> dict | list[dict]:
    """The answer body: one object, or an array of n_cmpl (identical when decoding is greedy)."""
    if req.n_cmpl == 1:
        return select_fields(await complete_one(req, model, session), req.response_fields)
    if req.settings.temperature == 0:
        one = await complete_one(req, model, session)
        answers = [{**one, "index": i} for i in range(req.n_cmpl)]
    else:
        # Submitted together, the samples share forward passes in one engine batch.
        answers = await asyncio.gather(*(complete_one(req, model, session, i) for i in range(req.n_cmpl)))
    return [select_fields(a, req.response_fields) for a in answers]
