"""sdls's own endpoints: the worker's jobs over HTTP, for the language server's remote backend.

POST /sdls/v1/jobs   {lane: "inline"|"rewrite", job: <the worker's wire job>, stream?: bool, model?: str}
                     -> {result: <wire result>}; streamed: `event: block` {text: the middle so far} per
                     committed block, then `event: result` {result} (or `event: error` {error})
POST /sdls/v1/doubt  {text, start, end, model?} -> {spans: [[start, end, probability], ...]}
GET  /sdls/v1/model  -> the engine's description (and the names of every served model)
GET  /sdls/v1/stats  -> per model: lane counters, queue lengths, jobs per engine call, memory
The job is checked by the worker's own validation (sdls.worker.wire.job_from_wire).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sdls.worker.client import JobRefused, WorkerError
from sdls.worker.protocol import LANES, ProtocolError
from sdls.worker.wire import job_from_wire, result_to_wire

from . import fields
from .errors import ApiError, error_body
from .running import job_events
from .served_model import ServedModel


def parse_job(data: dict, model: ServedModel) -> tuple[Any, str]:
    """The client's job and lane, refused (400) if malformed or over the model's memory budget, before
    an answer (streamed or not) starts."""
    lane = data.get("lane", "inline")
    if lane not in LANES:
        raise ApiError(400, f"field 'lane' must be one of {', '.join(LANES)}, got {lane!r}")
    try:
        job = job_from_wire(data.get("job"))
    except ProtocolError as exc:
        raise ApiError(400, f"bad job: {exc}") from None
    refuse_over_budget(model, job)
    return job, lane


def refuse_over_budget(model: ServedModel, job: Any) -> None:
    """400 for a job over the model's per-job memory budget, before anything of its answer is sent."""
    if problem := model.backend.refusal(job):
        raise ApiError(400, problem)


async def run_job(model: ServedModel, job: Any, lane: str) -> dict:
    try:
        result = await model.backend.run(job, lane)
    except JobRefused as exc:
        raise ApiError(400, str(exc)) from None
    except WorkerError as exc:
        raise ApiError(500, str(exc)) from None
    return {"result": result_to_wire(result)}


async def job_stream(model: ServedModel, job: Any, lane: str) -> AsyncIterator[tuple[str, dict]]:
    """(event name, data) for a streamed job; an engine failure is the last event, not a broken stream."""
    try:
        async for kind, value in job_events(model.backend, job, lane):
            if kind == "block":
                yield "block", {"text": value}
            else:
                yield "result", {"result": result_to_wire(value)}
    except WorkerError as exc:
        yield "error", error_body(500, str(exc))


def parse_doubt(data: dict) -> tuple[str, int, int]:
    text = fields.text(data, "text")
    start = fields.integer(data, "start", 0, 0, len(text))
    end = fields.integer(data, "end", len(text), start, len(text))
    return text, start, end


async def doubt(model: ServedModel, text: str, start: int, end: int) -> dict:
    try:
        spans = await model.backend.doubt(text, start, end)
    except WorkerError as exc:
        raise ApiError(500, str(exc)) from None
    return {"spans": [list(span) for span in spans]}
