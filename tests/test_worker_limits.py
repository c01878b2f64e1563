"""The worker refuses one bad job, not the connection, and bounds what clients may cost (issue 16):
frame size, connections, jobs in flight per connection, memory per job; each refusal alone."""

from __future__ import annotations

import asyncio
import struct

import pytest
from lsp_fakes import SteppingEngine
from waiting import SAFETY_S, eventually_async

from sdls.lsp.settings import Settings
from sdls.worker.client import WorkerClient
from sdls.worker.protocol import MAX_DOCUMENT_CHARS, MAX_FRAME_BYTES, MAX_IN_FLIGHT, encode_frame, hello, read_frame
from sdls.worker.scheduler import Scheduler
from sdls.worker.socket_server import MAX_CLIENTS, WorkerServer
from sdls.worker.wire import job_to_wire
from sdls_model.jobs import DecodeSettings, EditJob, InfillJob


@pytest.fixture
async def worker(short_tmp_dir):
    engine = SteppingEngine(steps=3)
    scheduler = Scheduler(engine)
    scheduler.start()
    server = WorkerServer(scheduler, describe=engine.describe, socket_path=short_tmp_dir / "w.sock")
    ready = asyncio.Event()
    task = asyncio.ensure_future(server.serve(ready=ready.set))
    await asyncio.wait_for(ready.wait(), SAFETY_S)
    yield server
    engine.gate.open()
    server.stop()
    await asyncio.wait_for(task, SAFETY_S)
    scheduler.stop()


async def connect(server: WorkerServer):
    reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
    writer.write(encode_frame(hello(client="test")))
    assert (await asyncio.wait_for(read_frame(reader), SAFETY_S))["type"] == "hello"
    return reader, writer


def submit(msg_id: int, job: dict, lane: str = "inline") -> bytes:
    return encode_frame({"type": "submit", "id": msg_id, "lane": lane, "job": job})


def bad_jobs() -> list[tuple[dict, str, str]]:
    """(job on the wire, lane, what the refusal names)."""
    huge_block = job_to_wire(InfillJob(prefix="x"))
    huge_block["settings"]["block_size"] = 100_000
    endless = job_to_wire(InfillJob(prefix="x"))
    endless["settings"]["temperature"] = float("inf")
    forged = {"kind": "edit", "settings": {}, "text": "ab", "start": -100, "end": 10**9, "marked": []}
    forged |= {"edit_threshold": 0.1, "max_rounds": 1}
    return [
        (huge_block, "inline", "block_size"),
        (endless, "inline", "temperature"),
        (forged, "rewrite", "outside the text"),
        ({"kind": "edit", "marked": [[1]]}, "rewrite", "settings"),
        (job_to_wire(InfillJob(prefix="x")), "express", "lane"),
    ]


@pytest.mark.parametrize("bad, lane, named", bad_jobs())
async def test_a_bad_job_gets_an_error_and_the_jobs_beside_it_carry_on(worker, bad, lane, named):
    engine = worker.scheduler.engine
    engine.gate.close()
    reader, writer = await connect(worker)
    writer.write(submit(1, job_to_wire(InfillJob(prefix="legit"))))
    engine.gate.allow(1)
    await asyncio.to_thread(engine.gate.wait_held)  # the legitimate job is on the engine
    writer.write(submit(2, bad, lane))
    refusal = await asyncio.wait_for(read_frame(reader), SAFETY_S)
    assert refusal["type"] == "error" and refusal["id"] == 2 and named in refusal["message"]
    engine.gate.open()
    answer = await asyncio.wait_for(read_frame(reader), SAFETY_S)
    assert answer["type"] == "result" and answer["id"] == 1 and answer["result"]["text"] == "<git>"
    writer.write(submit(3, job_to_wire(InfillJob(prefix="after"))))  # the connection still serves
    assert (await asyncio.wait_for(read_frame(reader), SAFETY_S))["id"] == 3
    assert worker.dropped == 0 and worker.refused == 1
    writer.close()


async def test_a_bad_doubt_region_is_refused_alone(worker):
    reader, writer = await connect(worker)
    writer.write(encode_frame({"type": "doubt", "id": 5, "text": "abc", "start": -100, "end": 10**9}))
    refusal = await asyncio.wait_for(read_frame(reader), SAFETY_S)
    assert refusal["type"] == "error" and refusal["id"] == 5 and "region" in refusal["message"]
    writer.write(encode_frame({"type": "stats", "id": 6}))
    assert (await asyncio.wait_for(read_frame(reader), SAFETY_S))["result"]["refused"] == 1
    writer.close()


# -- what a client may cost: frame size, connections, jobs in flight, memory ----------------------
async def test_the_largest_legitimate_job_fits_a_frame_and_a_longer_one_is_refused_unread(worker):
    # A job carries at most one document; the server parses documents up to MAX_DOCUMENT_CHARS.
    assert Settings().max_document_chars == MAX_DOCUMENT_CHARS
    document = "\U0001d538" * MAX_DOCUMENT_CHARS  # 4 bytes of UTF-8 each: the worst case
    edit = job_to_wire(EditJob(text=document, start=0, end=len(document)))
    assert len(encode_frame({"type": "submit", "id": 1, "lane": "rewrite", "job": edit})) <= MAX_FRAME_BYTES + 4
    other_reader, other_writer = await connect(worker)
    reader, writer = await connect(worker)
    writer.write(struct.pack(">I", MAX_FRAME_BYTES + 1))  # the header alone: no body is ever sent
    refusal = await asyncio.wait_for(read_frame(reader), SAFETY_S)
    assert refusal["type"] == "error" and f"exceeds the {MAX_FRAME_BYTES}-byte limit" in refusal["message"]
    assert await asyncio.wait_for(read_frame(reader), SAFETY_S) is None  # that client alone is closed
    other_writer.write(encode_frame({"type": "stats", "id": 7}))
    assert (await asyncio.wait_for(read_frame(other_reader), SAFETY_S))["result"]["dropped"] == 1
    other_writer.close()


async def test_one_connection_over_the_limit_is_refused_and_the_others_are_served(worker):
    assert worker.max_clients == MAX_CLIENTS
    clients = [await connect(worker) for _ in range(MAX_CLIENTS)]
    reader, writer = await asyncio.open_unix_connection(str(worker.socket_path))
    writer.write(encode_frame(hello(client="one too many")))
    refusal = await asyncio.wait_for(read_frame(reader), SAFETY_S)
    assert refusal["type"] == "error" and f"at most {MAX_CLIENTS} clients" in refusal["message"]
    assert await asyncio.wait_for(read_frame(reader), SAFETY_S) is None
    first_reader, first_writer = clients[0]
    first_writer.write(encode_frame({"type": "stats", "id": 1}))
    assert (await asyncio.wait_for(read_frame(first_reader), SAFETY_S))["result"]["turned_away"] == 1
    clients.pop()[1].close()  # one leaves: a new client is let in
    await eventually_async(lambda: len(worker.connections) < MAX_CLIENTS, "the worker to see the client go")
    await connect(worker)
    for _, w in clients:
        w.close()


async def test_one_job_over_the_in_flight_limit_is_refused_and_the_others_run(worker):
    engine = worker.scheduler.engine
    engine.gate.close()  # nothing finishes: every job stays in flight
    reader, writer = await connect(worker)
    other_reader, other_writer = await connect(worker)
    for msg_id in range(MAX_IN_FLIGHT):
        writer.write(submit(msg_id, job_to_wire(InfillJob(prefix=f"job{msg_id}"))))
    writer.write(submit(MAX_IN_FLIGHT, job_to_wire(InfillJob(prefix="one more"))))
    refusal = await asyncio.wait_for(read_frame(reader), SAFETY_S)
    assert refusal["type"] == "error" and refusal["id"] == MAX_IN_FLIGHT and "in flight" in refusal["message"]
    other_writer.write(submit(1, job_to_wire(InfillJob(prefix="other"))))  # another client: its own room
    engine.gate.open()
    answers = [await asyncio.wait_for(read_frame(reader), SAFETY_S) for _ in range(MAX_IN_FLIGHT)]
    assert sorted(a["id"] for a in answers if a["type"] == "result") == list(range(MAX_IN_FLIGHT))
    assert (await asyncio.wait_for(read_frame(other_reader), SAFETY_S))["result"]["text"] == "<her>"
    assert worker.dropped == 0
    writer.close()
    other_writer.close()


async def test_the_client_keeps_to_the_in_flight_limit_so_a_big_wave_is_served_whole(worker):
    client = WorkerClient(worker.socket_path)  # a fill-stubs wave of 100 holes sends 100 jobs at once
    try:
        jobs = [client.run(InfillJob(prefix=f"stub{i:03d}"), "rewrite") for i in range(MAX_IN_FLIGHT + 36)]
        results = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), SAFETY_S)
        assert [getattr(r, "text", r) for r in results] == [f"<{i:03d}>" for i in range(MAX_IN_FLIGHT + 36)]
        assert worker.refused == 0  # the worker never held more than it takes
    finally:
        await client.close()


@pytest.fixture
async def budget_worker(short_tmp_dir, tiny_model_dir):
    from sdls_model.engine import Engine

    engine = Engine.from_dir(tiny_model_dir, max_context=256)
    small, big = _budget_jobs()
    scheduler = Scheduler(engine)
    scheduler.start()
    budget = (engine.memory_need(small) + engine.memory_need(big)) // 2  # the small fits, the big does not
    server = WorkerServer(
        scheduler, describe=engine.describe, socket_path=short_tmp_dir / "w.sock", memory_budget=budget
    )
    ready = asyncio.Event()
    task = asyncio.ensure_future(server.serve(ready=ready.set))
    await asyncio.wait_for(ready.wait(), SAFETY_S)
    yield server
    server.stop()
    await asyncio.wait_for(task, SAFETY_S)
    scheduler.stop()


def _budget_jobs() -> tuple[InfillJob, InfillJob]:
    small = InfillJob(prefix="def f(x):\n    return ", suffix="\n", max_new_tokens=4)
    big = InfillJob(prefix="x = 1\n" * 100, max_new_tokens=512, settings=DecodeSettings(block_size=512))
    return small, big


async def test_a_job_over_the_memory_budget_is_refused_alone(budget_worker):
    small, big = _budget_jobs()
    reader, writer = await connect(budget_worker)
    writer.write(submit(1, job_to_wire(big)))
    writer.write(submit(2, job_to_wire(small)))
    refusal = await asyncio.wait_for(read_frame(reader), SAFETY_S)
    assert refusal["type"] == "error" and refusal["id"] == 1 and "memory budget" in refusal["message"]
    answer = await asyncio.wait_for(read_frame(reader), SAFETY_S)
    assert answer["type"] == "result" and answer["id"] == 2  # the same connection, the next job served
    assert budget_worker.refused == 1 and budget_worker.dropped == 0
    writer.close()
