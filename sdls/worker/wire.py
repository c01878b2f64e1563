"""Engine jobs and results <-> plain msgpack-able dicts.

Uses sdls_model.jobs (plain data, no torch) so that the language server process can build jobs
without importing torch: only the worker pays for the model's memory.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sdls.text import without_lone_surrogates
from sdls_model.job_limits import range_problems
from sdls_model.jobs import DecodeSettings, EditJob, InfillJob, JobResult, JobStats, TextEdit

from .protocol import ProtocolError

Job = InfillJob | EditJob


class BadJob(ProtocolError):
    """A well-framed request whose job (or region) is invalid: that one request is answered with an
    error, the connection and the other jobs on it carry on."""


def job_to_wire(job: Job) -> dict[str, Any]:
    settings = dataclasses.asdict(job.settings)
    if isinstance(job, InfillJob):
        return {
            "kind": "infill",
            "prefix": without_lone_surrogates(job.prefix),
            "suffix": without_lone_surrogates(job.suffix),
            "max_new_tokens": job.max_new_tokens,
            "settings": settings,
            "session": job.session,
            "single_line": job.single_line,
        }
    return {
        "kind": "edit",
        "text": without_lone_surrogates(job.text),
        "start": job.start,
        "end": job.end,
        "marked": [list(span) for span in job.marked],
        "settings": settings,
        "edit_threshold": job.edit_threshold,
        "max_rounds": job.max_rounds,
        "session": job.session,
    }


def _field(data: dict, key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
        raise BadJob(f"job field {key!r} must be {kind}, got {value!r}")
    return value


def _in_range(**values: Any) -> None:
    if problems := range_problems(values):
        raise BadJob("job refused: " + "; ".join(problems))


def _spans(value: list, length: int) -> list[tuple[int, int]]:
    """Marked spans: pairs of integers start <= end inside the text."""
    spans = []
    for span in value:
        if not (isinstance(span, list) and len(span) == 2 and all(type(v) is int for v in span)):
            raise BadJob(f"job field 'marked' must hold [start, end] integer pairs, got {span!r}")
        if not 0 <= span[0] <= span[1] <= length:
            raise BadJob(f"marked span {span[0]}..{span[1]} is outside the text (length {length})")
        spans.append((span[0], span[1]))
    return spans


def job_from_wire(data: Any) -> Job:
    """A job from its wire form; every malformed or out-of-range field (JOB_RANGES) is a BadJob, never a crash."""
    if not isinstance(data, dict):
        raise BadJob(f"job must be a map, got {type(data).__name__}")
    try:
        settings = DecodeSettings(**_field(data, "settings", dict))
    except (TypeError, ValueError) as exc:
        raise BadJob(f"bad decode settings: {exc}") from exc
    session = data.get("session")
    if session is not None and not isinstance(session, str):
        raise BadJob("job field 'session' must be a string or nil")
    if data.get("kind") == "infill":
        single_line = data.get("single_line", False)
        if not isinstance(single_line, bool):
            raise BadJob("job field 'single_line' must be a boolean")
        max_new_tokens = _field(data, "max_new_tokens", int)
        _in_range(max_new_tokens=max_new_tokens)
        return InfillJob(
            prefix=_field(data, "prefix", str),
            suffix=_field(data, "suffix", str),
            max_new_tokens=max_new_tokens,
            settings=settings,
            session=session,
            single_line=single_line,
        )
    if data.get("kind") == "edit":
        text, start, end = _field(data, "text", str), _field(data, "start", int), _field(data, "end", int)
        if not 0 <= start <= end <= len(text):
            raise BadJob(f"edit region {start}..{end} is outside the text (length {len(text)})")
        marked = _spans(_field(data, "marked", list), len(text))
        edit_threshold, max_rounds = _field(data, "edit_threshold", (int, float)), _field(data, "max_rounds", int)
        _in_range(edit_threshold=edit_threshold, max_rounds=max_rounds)
        return EditJob(
            text=text,
            start=start,
            end=end,
            marked=marked,
            settings=settings,
            edit_threshold=float(edit_threshold),
            max_rounds=max_rounds,
            session=session,
        )
    raise BadJob(f"unknown job kind {data.get('kind')!r}")


def doubt_to_wire(spans: list[tuple[int, int, float]]) -> dict[str, Any]:
    return {"spans": [list(span) for span in spans]}


def doubt_from_wire(data: dict[str, Any]) -> list[tuple[int, int, float]]:
    """(start, end, probability) of each doubted span, as the engine's `doubt` gives them."""
    return [(int(s), int(e), float(p)) for s, e, p in data["spans"]]


def result_to_wire(result: JobResult) -> dict[str, Any]:
    return {
        "text": result.text,
        "tokens": list(result.tokens),
        "cancelled": result.cancelled,
        "edits": [[e.start, e.end, e.new_text] for e in result.edits],
        "stats": {f.name: getattr(result.stats, f.name) for f in dataclasses.fields(JobStats)},
    }


def result_from_wire(data: dict[str, Any]) -> JobResult:
    known = {f.name for f in dataclasses.fields(JobStats)}
    stats = JobStats(**{k: v for k, v in data.get("stats", {}).items() if k in known})
    return JobResult(
        text=data["text"],
        tokens=list(data["tokens"]),
        stats=stats,
        cancelled=bool(data["cancelled"]),
        edits=[TextEdit(int(s), int(e), t) for s, e, t in data.get("edits", [])],
    )
