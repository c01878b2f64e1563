"""Every numeric job field and setting has a documented range, checked at each boundary (issue 16)."""

from __future__ import annotations

import dataclasses
import math
from typing import get_type_hints

import msgpack
import pytest

from sdls.lsp import settings as settings_module
from sdls.lsp.settings import SETTING_RANGES, Settings, settings_from
from sdls.worker.wire import BadJob, job_from_wire, job_to_wire
from sdls_model.job_limits import JOB_RANGES
from sdls_model.jobs import DecodeSettings, EditJob, InfillJob


def numeric_fields(cls) -> list[str]:
    hints = get_type_hints(cls)
    return [
        f.name
        for f in dataclasses.fields(cls)
        if any(t in (int, float) for t in getattr(hints[f.name], "__args__", ())) or hints[f.name] in (int, float)
    ]


def test_every_numeric_job_field_has_a_range():
    fields = set(numeric_fields(DecodeSettings)) | set(numeric_fields(InfillJob)) | set(numeric_fields(EditJob))
    fields -= {"start", "end"}  # offsets: checked against the text, not a table
    assert fields == set(JOB_RANGES)


def setting_paths(obj, prefix: str = "") -> list[str]:
    hints, found = get_type_hints(type(obj)), []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            found += setting_paths(value, f"{prefix}{f.name}.")
        elif hints[f.name] in (int, float) or any(t in (int, float) for t in getattr(hints[f.name], "__args__", ())):
            found.append(prefix + f.name)
    return found


def test_every_numeric_setting_has_a_range_and_its_default_fits():
    assert sorted(setting_paths(Settings())) == sorted(SETTING_RANGES)
    defaults = Settings()
    for path, rng in SETTING_RANGES.items():
        value = defaults
        for part in path.split("."):
            value = getattr(value, part)
        assert value is None or rng.problem(path, value) is None, path


@pytest.mark.parametrize(
    "field, value",
    [
        ("temperature", math.inf),
        ("temperature", math.nan),
        ("temperature", -1.0),
        ("block_size", 100_000),
        ("threshold", 0.0),
        ("top_p", 2.0),
        ("tokens_per_step", 10**6),
        ("seed", -1),
        ("block_size", True),
    ],
)
def test_decode_settings_out_of_range_are_refused_everywhere(field, value):
    with pytest.raises(ValueError, match=field):
        DecodeSettings(**{field: value})
    wire = job_to_wire(InfillJob(prefix="x = "))
    wire["settings"][field] = value
    with pytest.raises(BadJob, match=field):
        job_from_wire(msgpack.unpackb(msgpack.packb(wire)))


@pytest.mark.parametrize(
    "job, field, value",
    [
        (InfillJob(prefix="x"), "max_new_tokens", 10**6),
        (InfillJob(prefix="x"), "max_new_tokens", 0),
        (EditJob("abc", 0, 2), "edit_threshold", math.inf),
        (EditJob("abc", 0, 2), "max_rounds", 10**6),
        (EditJob("abc", 0, 2), "marked", [[0, 10**9]]),
        (EditJob("abc", 0, 2), "marked", [[-100, 1]]),
        (EditJob("abc", 0, 2), "marked", [7]),
        (EditJob("abc", 0, 2), "start", -100),
    ],
)
def test_job_fields_out_of_range_are_bad_jobs(job, field, value):
    wire = job_to_wire(job)
    wire[field] = value
    with pytest.raises(BadJob, match=field if field not in ("marked", "start") else "marked|outside"):
        job_from_wire(wire)


def test_in_range_values_pass_the_wire():
    job = InfillJob(prefix="x", max_new_tokens=4096, settings=DecodeSettings(temperature=100.0, block_size=512))
    assert job_from_wire(job_to_wire(job)) == job


@pytest.mark.parametrize(
    "data, path",
    [
        ({"completion": {"blockSize": 100_000}}, "completion.blockSize"),
        ({"completion": {"threshold": 1.5}}, "completion.threshold"),
        ({"completion": {"maxTokens": 10**7}}, "completion.maxTokens"),
        ({"completion": {"timeoutS": 0}}, "completion.timeoutS"),
        ({"actions": {"editThreshold": -0.5}}, "actions.editThreshold"),
        ({"model": {"maxContext": 10**9}}, "model.maxContext"),
        ({"maxDocumentChars": -1}, "maxDocumentChars"),
    ],
)
def test_out_of_range_settings_keep_the_current_value_with_a_warning(data, path):
    settings, warnings = settings_from({**data, "completion": {**data.get("completion", {}), "debounceMs": 5}})
    assert settings == dataclasses.replace(
        Settings(), completion=dataclasses.replace(Settings().completion, debounce_ms=5)
    )
    assert len(warnings) == 1 and warnings[0].startswith(path) and "must be" in warnings[0]


def test_settings_use_the_job_ranges_for_job_fields():
    """One table: a setting that becomes a job field cannot accept what the worker would refuse."""
    assert settings_module.SETTING_RANGES["completion.block_size"] is JOB_RANGES["block_size"]
    assert settings_module.SETTING_RANGES["actions.max_tokens"] is JOB_RANGES["max_new_tokens"]
