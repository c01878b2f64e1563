"""The worker refuses one bad job, not the connection, and bounds what clients may cost (issue 16)."""

from __future__ import annotations

import asyncio

import pytest
from lsp_fakes import SteppingEngine
from waiting import SAFETY_S

from sdls.worker.protocol import encode_frame, hello, read_frame
from sdls.worker.scheduler import Scheduler
from sdls.worker.socket_server import WorkerServer
from sdls.worker.wire import job_to_wire
from sdls_model.jobs import InfillJob


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
