"""Fuzzing the worker's wire (Hypothesis): its frame reader, payload decoder and job validation take
any bytes or any msgpack value and either return a message / a job or raise ProtocolError, never
anything else (which would drop the connection with a traceback, or worse, reach the engine).
Coordinate-free: only the decode and validate functions are called. Longer: SDLS_FUZZ_EXAMPLES=5000."""

from __future__ import annotations

import asyncio
import os
import struct

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from sdls.worker.protocol import MAX_FRAME_BYTES, ProtocolError, decode_payload, encode_frame, read_frame
from sdls.worker.wire import job_from_wire, job_to_wire
from sdls_model.jobs import DecodeSettings, EditJob, InfillJob

EXAMPLES = int(os.environ.get("SDLS_FUZZ_EXAMPLES", "150"))
LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
VALUE = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
JOBS = st.sampled_from(
    [
        InfillJob(prefix="def f(x):\n    return ", suffix="\n", max_new_tokens=8, settings=DecodeSettings()),
        EditJob(text="a = b(c)\n", start=4, end=8, marked=[(4, 8)], settings=DecodeSettings()),
    ]
)


def _read(data: bytes, max_bytes: int = MAX_FRAME_BYTES):
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        messages = []
        while (message := await read_frame(reader, max_bytes)) is not None:
            messages.append(message)
        return messages

    return asyncio.run(go())


@settings(max_examples=EXAMPLES)
@given(st.binary(max_size=2000))
def test_any_bytes_are_frames_or_a_protocol_error(data):
    try:
        messages = _read(data, max_bytes=4096)
    except ProtocolError:
        return
    assert all(isinstance(m, dict) and isinstance(m.get("type"), str) for m in messages)


@settings(max_examples=EXAMPLES)
@given(st.integers(0, 2**32 - 1), st.binary(max_size=64))
def test_a_length_prefix_is_checked_before_anything_is_read(length, rest):
    try:
        _read(struct.pack(">I", length) + rest, max_bytes=1024)
    except ProtocolError as exc:
        assert length > 1024 or "ended inside" in str(exc) or "msgpack" in str(exc) or "map" in str(exc)


@settings(max_examples=EXAMPLES)
@given(VALUE)
def test_any_msgpack_value_decodes_to_a_message_or_a_protocol_error(value):
    try:
        message = decode_payload(msgpack.packb(value, use_bin_type=True))
    except ProtocolError:
        return
    assert isinstance(message, dict) and isinstance(message["type"], str)


@settings(max_examples=EXAMPLES)
@given(VALUE)
def test_any_value_is_a_job_or_a_protocol_error(value):
    try:
        job = job_from_wire(value)
    except ProtocolError:
        return
    assert isinstance(job, (InfillJob, EditJob))


@settings(max_examples=EXAMPLES)
@given(JOBS, st.data())
def test_a_valid_job_with_one_field_replaced_is_a_job_or_a_protocol_error(job, data):
    wire = job_to_wire(job)
    key = data.draw(st.sampled_from(sorted(wire)))
    wire[key] = data.draw(VALUE)
    if data.draw(st.booleans()) and isinstance(wire.get("settings"), dict):
        wire["settings"][data.draw(st.sampled_from(sorted(wire["settings"]) or ["x"]))] = data.draw(VALUE)
    # Through the real encoding, as the worker receives it.
    try:
        decoded = decode_payload(encode_frame({"type": "submit", "job": wire})[4:])["job"]
        rebuilt = job_from_wire(decoded)
    except ProtocolError:
        return
    if isinstance(rebuilt, EditJob):
        assert 0 <= rebuilt.start <= rebuilt.end <= len(rebuilt.text)
        assert all(isinstance(s, int) and isinstance(e, int) for s, e in rebuilt.marked)
