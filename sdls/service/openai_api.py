"""OpenAI-style `POST /v1/completions` (prompt + suffix) and Mistral's `POST /v1/fim/completions`.

Both take `prompt` (the text before the cursor), `suffix`, `max_tokens`, `stop`, `temperature`,
`top_p`, `seed` (`random_seed` for Mistral) and `stream` (server-sent events, `data: [DONE]` last).
/v1/completions answers `choices[i].text` (object "text_completion"); /v1/fim/completions answers in
Mistral's chat shape, `choices[0].message.content` or, streamed, `choices[0].delta.content`.
Decoding is greedy unless a temperature is given: sdls's models are trained for it. Unsupported
options that change the answer (`logprobs`, `best_of` > n, `echo` with a suffix) are a 400, not
silently dropped.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sdls_model.jobs import DecodeSettings, InfillJob

from . import fields
from .errors import ApiError
from .generation import Outcome, generate
from .served_model import ServedModel
from .text_stream import TextStream

MAX_PROMPTS = 8


@dataclass
class FimRequest:
    prompts: list[str]
    suffix: str
    max_tokens: int
    stops: list[str]
    settings: DecodeSettings
    stream: bool
    echo: bool
    include_usage: bool
    model: str


def parse_fim(data: dict, model: ServedModel, mistral: bool) -> FimRequest:
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif not mistral and isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = prompt
    else:
        raise ApiError(400, "field 'prompt' must be a string" + ("" if mistral else " or a list of strings"))
    n = fields.integer(data, "n", 1, 1, MAX_PROMPTS)
    if len(prompts) * n > MAX_PROMPTS:
        raise ApiError(400, f"at most {MAX_PROMPTS} completions per request (prompts x n)")
    if data.get("logprobs") not in (None, 0, False):
        raise ApiError(400, "logprobs are not supported by this service")
    if fields.integer(data, "best_of", n, 1, MAX_PROMPTS) != n:
        raise ApiError(400, "best_of other than n is not supported by this service")
    echo = fields.flag(data, "echo", False)
    suffix = fields.text(data, "suffix")
    if echo and suffix:
        raise ApiError(400, "echo with a suffix is not supported (the answer would not be the prompt's continuation)")
    for p in prompts:
        if len(p) > fields.MAX_TEXT_CHARS:
            raise ApiError(413, f"a prompt of {len(p)} characters; the limit is {fields.MAX_TEXT_CHARS}")
    seed_key = "random_seed" if mistral else "seed"
    try:
        settings = DecodeSettings(
            temperature=fields.number(data, "temperature", 0.0, 0.0, 100.0),
            top_p=fields.number(data, "top_p", 1.0, 0.0, 1.0) or 1.0,
            seed=fields.integer(data, seed_key, 0, -(2**63), 2**63 - 1) % 2**32,
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "field 'stream_options' must be an object")
    default_tokens = 16 if not mistral else model.max_new_tokens  # OpenAI's documented default is 16
    return FimRequest(
        prompts=[p for p in prompts for _ in range(n)],
        suffix=suffix,
        max_tokens=min(fields.integer(data, "max_tokens", default_tokens, 1, 1_000_000), model.max_new_tokens),
        stops=fields.stop_strings(data),
        settings=settings,
        stream=fields.flag(data, "stream", False),
        echo=echo,
        include_usage=bool((options or {}).get("include_usage")),
        model=fields.model_id(data) or model.name,
    )


def fim_job(req: FimRequest, index: int) -> InfillJob:
    s = req.settings
    if index and s.temperature > 0:
        s = DecodeSettings(temperature=s.temperature, top_p=s.top_p, seed=s.seed + index)
    return InfillJob(req.prompts[index], req.suffix, req.max_tokens, s)


def finish_reason(outcome: Outcome, max_tokens: int) -> str:
    """ "length" when the token budget ran out, "stop" when the model or a stop string ended the text."""
    return "length" if outcome.stop_type == "limit" and outcome.tokens >= max_tokens else "stop"


class Envelope:
    """The fields every answer and chunk of one request share."""

    def __init__(self, req: FimRequest, mistral: bool):
        self.mistral = mistral
        self.id = ("cmpl-" if not mistral else "fim-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.model = req.model

    def head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def choice(self, index: int, text: str, reason: str | None, streamed: bool) -> dict:
        if not self.mistral:
            return {"index": index, "text": text, "finish_reason": reason, "logprobs": None}
        if streamed:
            return {"index": index, "delta": {"role": "assistant", "content": text}, "finish_reason": reason}
        return {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": reason}


def usage(outcomes: list[Outcome]) -> dict:
    """Prompt tokens as the engine read them (prompt, suffix and its own markers, after windowing)."""
    prompt = sum(o.result.stats.context_tokens for o in outcomes)
    completion = sum(o.tokens for o in outcomes)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _one(req: FimRequest, model: ServedModel, index: int) -> Outcome:
    outcome = None
    async for item in generate(model, fim_job(req, index), TextStream(req.stops)):
        if isinstance(item, Outcome):
            outcome = item
    assert outcome is not None
    return outcome


async def complete(req: FimRequest, model: ServedModel, mistral: bool) -> dict:
    env = Envelope(req, mistral)
    outcomes = await asyncio.gather(*(_one(req, model, i) for i in range(len(req.prompts))))
    choices = [
        env.choice(i, (req.prompts[i] if req.echo else "") + o.text, finish_reason(o, req.max_tokens), False)
        for i, o in enumerate(outcomes)
    ]
    obj = "chat.completion" if mistral else "text_completion"
    return {**env.head(obj), "choices": choices, "usage": usage(outcomes)}


async def stream_chunks(req: FimRequest, model: ServedModel, mistral: bool) -> AsyncIterator[dict]:
    """Chunks of a streamed answer (one prompt): text deltas, then one with the finish reason."""
    if len(req.prompts) != 1:
        raise ApiError(400, "streaming serves one completion per request (one prompt, n = 1)")
    env = Envelope(req, mistral)
    obj = "chat.completion.chunk" if mistral else "text_completion"
    if req.echo and req.prompts[0]:
        yield {**env.head(obj), "choices": [env.choice(0, req.prompts[0], None, True)]}
    async for item in generate(model, fim_job(req, 0), TextStream(req.stops)):
        if isinstance(item, Outcome):
            chunk = {**env.head(obj), "choices": [env.choice(0, "", finish_reason(item, req.max_tokens), True)]}
            if req.include_usage or mistral:
                chunk["usage"] = usage([item])
            yield chunk
        else:
            yield {**env.head(obj), "choices": [env.choice(0, item, None, True)]}
