"""One completion for an HTTP route: deltas as blocks are committed, then how it ended.

Shared by /infill and the OpenAI-style routes. A stop string, the minimum indentation or the
deadline ends the text early: the job's CancelToken is set (it stops at its next denoising step)
and its result still arrives, with the work it did.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sdls_model.jobs import JobResult

from .running import job_events
from .text_stream import TextStream


@dataclass
class Outcome:
    text: str
    stop_type: str  # "eos" (the model ended it), "limit" (token budget, indentation, deadline), "word" (stop string)
    stopping_word: str
    result: JobResult  # the job's stats (for an early end, of the work done until it stopped)
    tokens: int  # tokens of `text`
    ms: float  # wall time from submission to the answer


async def generate(
    model: Any,
    job: Any,
    stream: TextStream,
    deadline_s: float | None = None,
    lane: str = "inline",
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[str | Outcome]:
    """Yields text deltas (str), then one Outcome. `deadline_s` (llama.cpp's t_max_predict_ms): once it
    has passed and the text has a line break, the text ends at its last line break."""
    started = clock()
    async with contextlib.aclosing(job_events(model.backend, job, lane)) as events:
        async for kind, value in events:
            if kind == "block":
                if stream.ended:
                    continue  # the job is stopping: this block came before the cancel landed
                late = deadline_s is not None and clock() - started > deadline_s
                delta = stream.end_at_line(value) if late and "\n" in value else stream.feed(value)
                if delta:
                    yield delta
                if stream.ended and job.cancel is not None:
                    job.cancel.cancel()
                continue
            result: JobResult = value
            ended_early = stream.ended
            delta = stream.feed(result.text, final=True)
            if delta:
                yield delta
            if ended_early or stream.ended:
                stop_type, tokens = stream.stop_type or "limit", model.count_tokens(stream.sent)
            else:
                tokens = len(result.tokens)
                stop_type = "limit" if tokens >= job.max_new_tokens else "eos"
            yield Outcome(stream.sent, stop_type, stream.stopping_word, result, tokens, (clock() - started) * 1e3)
