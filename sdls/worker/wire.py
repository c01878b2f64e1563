"""Engine jobs and results <-> plain msgpack-able dicts.

Uses sdls_model.jobs (plain data, no torch) so that the language server process can build jobs
without importing torch: only the worker pays for the model's memory.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sdls.text import without_lone_surrogates
from sdls_model.jobs import DecodeSettings, EditJob, InfillJob, JobResult, JobStats, TextEdit

from .protocol import ProtocolError

Job = InfillJob | EditJob


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
        raise ProtocolError(f"job field {key!r} must be {kind}, got {value!r}")
    return value


def job_from_wire(data: Any) -> Job:
    """A job from its wire form; every malformed field is a ProtocolError, never a crash."""
    if not isinstance(data, dict):
        raise ProtocolError(f"job must be a map, got {type(data).__name__}")
    try:
        settings = DecodeSettings(**_field(data, "settings", dict))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"bad decode settings: {exc}") from exc
    session = data.get("session")
    if session is not None and not isinstance(session, str):
        raise ProtocolError("job field 'session' must be a string or nil")
    if data.get("kind") == "infill":
        single_line = data.get("single_line", False)
        if not isinstance(single_line, bool):
            raise ProtocolError("job field 'single_line' must be a boolean")
        return InfillJob(
            prefix=_field(data, "prefix", str),
            suffix=_field(data, "suffix", str),
            max_new_tokens=_field(data, "max_new_tokens", int),
            settings=settings,
            session=session,
            single_line=single_line,
        )
    if data.get("kind") == "edit":
        text, start, end = _field(data, "text", str), _field(data, "start", int), _field(data, "end", int)
        if not 0 <= start <= end <= len(text):
            raise ProtocolError(f"edit region {start}..{end} is outside the text (length {len(text)})")
        marked = [(int(s), int(e)) for s, e in _field(data, "marked", list)]
        return EditJob(
            text=text,
            start=start,
            end=end,
            marked=marked,
            settings=settings,
            edit_threshold=float(_field(data, "edit_threshold", (int, float))),
            max_rounds=_field(data, "max_rounds", int),
            session=session,
        )
    raise ProtocolError(f"unknown job kind {data.get('kind')!r}")


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
