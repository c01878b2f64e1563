"""Worker socket: framing, handshake, permissions, bad clients dropped alone, failures fail fast."""

from __future__ import annotations

import asyncio
import os
import stat
import struct

import msgpack
import pytest
from lsp_fakes import SteppingEngine
from waiting import SAFETY_S, eventually_async

from sdls.worker import client as client_module
from sdls.worker.client import ModelUnavailable, WorkerClient, WorkerError
from sdls.worker.protocol import PROTOCOL_VERSION, ProtocolError, decode_payload, encode_frame, hello, read_frame
from sdls.worker.scheduler import Scheduler
from sdls.worker.socket_server import SocketInUse, WorkerServer
from sdls.worker.wire import job_from_wire, job_to_wire, result_from_wire, result_to_wire
from sdls_model.jobs import DecodeSettings, EditJob, InfillJob, JobResult, JobStats, TextEdit


# -- pure parts -------------------------------------------------------------------------------
def test_job_and_result_round_trip():
    infill = InfillJob(
        prefix="def f(",
        suffix=")\n",
        max_new_tokens=9,
        settings=DecodeSettings(threshold=0.7, block_size=16),
        session="file:///a.py",
        single_line=True,
    )
    edit = EditJob(text="x = 1\n", start=0, end=5, marked=[(4, 5)], edit_threshold=0.2, max_rounds=3)
    for job in (infill, edit):
        back = job_from_wire(msgpack.unpackb(msgpack.packb(job_to_wire(job))))
        assert back == job
    result = JobResult("abc", [5, 6], JobStats(forwards=3, tokens_committed=2), False, [TextEdit(1, 2, "z")])
    assert result_from_wire(result_to_wire(result)) == result


def test_lone_surrogates_become_replacement_characters_with_offsets_kept():
    job = InfillJob(prefix="a\udc80b", suffix="")
    wire = job_to_wire(job)
    assert wire["prefix"] == "a\ufffdb"
    msgpack.packb(wire)  # would raise on a lone surrogate


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"kind": "infill"}, "settings"),
        ({"kind": "infill", "settings": {"rule": "nope"}, "prefix": "", "suffix": "", "max_new_tokens": 4}, "rule"),
        (
            {
                "kind": "edit",
                "settings": {},
                "text": "ab",
                "start": 1,
                "end": 9,
                "marked": [],
                "edit_threshold": 0.1,
                "max_rounds": 2,
            },
            "outside",
        ),
        ({"kind": "teleport", "settings": {}}, "unknown job kind"),
        ("not a map", "must be a map"),
    ],
)
def test_malformed_jobs_are_protocol_errors(bad, message):
    with pytest.raises(ProtocolError, match=message):
        job_from_wire(bad)


@pytest.mark.parametrize("payload", [b"\xc1\xc1\xc1", msgpack.packb([1, 2]), msgpack.packb({"no": "type"})])
def test_garbage_payloads_are_protocol_errors(payload):
    with pytest.raises(ProtocolError):
        decode_payload(payload)


def test_oversized_message_is_refused_before_sending():
    with pytest.raises(ProtocolError, match="exceeds"):
        encode_frame({"type": "submit", "blob": "x" * 2000}, max_bytes=1000)


# -- a live worker socket with a stepping engine ----------------------------------------------
@pytest.fixture
async def live_worker(short_tmp_dir):
    engine = SteppingEngine(steps=5)
    scheduler = Scheduler(engine)
    scheduler.start()
    server = WorkerServer(
        scheduler, describe=engine.describe, socket_path=short_tmp_dir / "w.sock", max_frame=64 * 1024
    )
    ready = asyncio.Event()
    task = asyncio.ensure_future(server.serve(ready=ready.set))
    await asyncio.wait_for(ready.wait(), SAFETY_S)
    yield server
    engine.gate.open()
    server.stop()
    await asyncio.wait_for(task, SAFETY_S)
    scheduler.stop()


async def raw_client(path):
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(encode_frame(hello(client="test")))
    reply = await read_frame(reader)
    assert reply["type"] == "hello" and reply["version"] == PROTOCOL_VERSION
    return reader, writer


async def test_socket_is_private_to_the_user(live_worker):
    mode = stat.S_IMODE(os.stat(live_worker.socket_path).st_mode)
    assert mode == 0o600


async def test_round_trip_through_the_client(live_worker):
    client = WorkerClient(live_worker.socket_path)
    try:
        result = await client.run(InfillJob(prefix="hello"), "inline")
        assert result.text == "<llo>" and result.stats.forwards == 5
        assert client.info["model"]["name"] == "stepping"
        stats = await client.stats()
        assert stats["lanes"]["inline"]["jobs"] == 1
    finally:
        await client.close()


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1",  # a frame whose payload is not msgpack
        struct.pack(">I", 10**9),  # a header announcing a 1 GB frame
        encode_frame({"type": "launch_missiles", "id": 1}),  # a well-formed frame of an unknown type
    ],
)
async def test_bad_frames_drop_only_that_connection(live_worker, junk):
    good = WorkerClient(live_worker.socket_path)
    try:
        reader, writer = await raw_client(live_worker.socket_path)
        writer.write(junk)
        reply = await asyncio.wait_for(read_frame(reader), SAFETY_S)
        assert reply["type"] == "error" and "protocol error" in reply["message"]
        assert await asyncio.wait_for(read_frame(reader), SAFETY_S) is None  # then closed
        # Another client is served as before.
        assert (await good.run(InfillJob(prefix="still"), "inline")).text == "<ill>"
        assert live_worker.dropped == 1
    finally:
        await good.close()


async def test_wrong_protocol_version_is_refused(live_worker):
    reader, writer = await asyncio.open_unix_connection(str(live_worker.socket_path))
    writer.write(encode_frame({"type": "hello", "version": PROTOCOL_VERSION + 1}))
    reply = await asyncio.wait_for(read_frame(reader), SAFETY_S)
    assert reply["type"] == "error" and "version" in reply["message"]


async def hold_mid_job(engine, steps_done: int) -> None:
    """Wait until the engine runs the job just sent and holds it after `steps_done` steps."""
    engine.gate.allow(steps_done)
    await asyncio.to_thread(engine.gate.wait_held)


async def test_disconnecting_client_cancels_its_running_job(live_worker):
    engine = live_worker.scheduler.engine
    engine.steps = 500
    engine.gate.close()
    client = WorkerClient(live_worker.socket_path)
    task = asyncio.ensure_future(client.run(InfillJob(prefix="abandoned"), "inline"))
    await hold_mid_job(engine, 2)
    await client.close()
    with pytest.raises(WorkerError):
        await asyncio.wait_for(task, SAFETY_S)
    await eventually_async(lambda: engine.current[0].cancel.cancelled, "the worker to cancel the job")
    engine.gate.open()
    stats = live_worker.scheduler.stats["inline"]
    await eventually_async(lambda: stats.cancelled, "the cancelled job to be counted")
    assert stats.cancelled == 1 and stats.forwards_wasted == 2  # stopped where it was


async def test_cancelled_request_reaches_the_worker(live_worker):
    engine = live_worker.scheduler.engine
    engine.steps = 500
    engine.gate.close()
    client = WorkerClient(live_worker.socket_path)
    try:
        task = asyncio.ensure_future(client.run(InfillJob(prefix="typing"), "inline"))
        await hold_mid_job(engine, 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually_async(lambda: engine.current[0].cancel.cancelled, "the worker to cancel the job")
        engine.gate.open()
        stats = live_worker.scheduler.stats["inline"]
        await eventually_async(lambda: stats.cancelled, "the cancelled job to be counted")
        assert stats.cancelled == 1 and stats.forwards_wasted == 3
        # The connection stays usable.
        engine.steps = 2
        assert (await client.run(InfillJob(prefix="next"), "inline")).text == "<ext>"
    finally:
        await client.close()


async def test_worker_going_away_fails_pending_requests(live_worker):
    engine = live_worker.scheduler.engine
    engine.gate.close()  # the job cannot finish: only the lost connection can answer the request
    client = WorkerClient(live_worker.socket_path)
    try:
        task = asyncio.ensure_future(client.run(InfillJob(prefix="inflight"), "inline"))
        await hold_mid_job(engine, 1)
        for conn in list(live_worker.connections):
            live_worker._close(conn)  # what the client sees when the worker process dies
        with pytest.raises(WorkerError, match="closed the connection"):
            await asyncio.wait_for(task, SAFETY_S)
        assert engine.progress["inflight"] == 1  # still held: the answer came from the lost connection
    finally:
        await client.close()


async def test_second_worker_on_the_same_socket_refuses(live_worker):
    other = WorkerServer(live_worker.scheduler, describe=dict, socket_path=live_worker.socket_path)
    with pytest.raises(SocketInUse):
        await other.serve()


class FakeClock:
    """Stands in for the client's `time`: time moves only when the test says."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_no_worker_and_no_spawn_is_a_clear_error_then_retried_after_the_backoff(short_tmp_dir, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(client_module, "time", clock)
    client = WorkerClient(short_tmp_dir / "nobody.sock", backoff_s=(0.5, 8.0))
    with pytest.raises(ModelUnavailable, match="no model worker is listening"):
        await client.run(InfillJob(prefix="x"), "inline")
    # Asked again within the backoff: the same reason at once, no new attempt (no retry storm).
    clock.now += 0.4
    with pytest.raises(WorkerError, match=r"no model worker is listening .*\(retrying in 0.1 s\)"):
        await client.run(InfillJob(prefix="x"), "inline")
    # Past the backoff: tried again (and the backoff doubles).
    clock.now += 0.2
    with pytest.raises(ModelUnavailable, match="no model worker is listening"):
        await client.run(InfillJob(prefix="x"), "inline")
    clock.now += 0.9
    with pytest.raises(WorkerError, match=r"retrying in 0.1 s"):
        await client.run(InfillJob(prefix="x"), "inline")


async def test_the_hello_says_how_the_model_fills_in(short_tmp_dir, tmp_path):
    """The worker's hello carries the engine's description: family, attention and infill strategy."""
    from fixtures_families import write_family

    from sdls_model.engine import Engine

    write_family(tmp_path / "sdar", "sdar")
    engine = Engine.from_dir(tmp_path / "sdar", max_context=64, max_new_tokens=8, max_batch=1, n_sessions=1)
    scheduler = Scheduler(engine)
    scheduler.start()
    server = WorkerServer(scheduler, describe=engine.describe, socket_path=short_tmp_dir / "w.sock")
    ready = asyncio.Event()
    task = asyncio.ensure_future(server.serve(ready=ready.set))
    await asyncio.wait_for(ready.wait(), 5)
    client = WorkerClient(server.socket_path)
    try:
        await client.run(InfillJob(prefix="def f(x):\n    return", max_new_tokens=4), "inline")
        model = client.info["model"]
        assert (model["family"], model["attention"], model["context_reuse"]) == ("sdar", "block_causal", "exact")
        assert model["infill"] == "prefix only (no fill-in-the-middle tokens: the suffix is not seen)"
    finally:
        await client.close()
        server.stop()
        await asyncio.wait_for(task, 5)
        scheduler.stop()
