"""Every model call has a deadline (issue 16): a job the worker does not finish in time fails with
ModelTimeout and is cancelled there; the worker is then probed, and one that still answers (only
slow: its engine is held) keeps its connection, while the in-process engine times out the same way.
The real stopped worker (SIGSTOP) is in test_worker_unresponsive.py."""

from __future__ import annotations

import asyncio

import pytest
from lsp_fakes import SteppingEngine
from waiting import SAFETY_S, eventually_async

from sdls.worker.client import ModelTimeout, WorkerClient
from sdls.worker.inprocess import InProcessBackend
from sdls.worker.scheduler import Scheduler
from sdls.worker.socket_server import WorkerServer
from sdls_model.jobs import InfillJob

DEADLINE_S = 0.2  # small, so the test is quick; nothing here asserts how long anything took


@pytest.fixture
async def worker(short_tmp_dir):
    engine = SteppingEngine(steps=2)
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


async def test_a_job_past_its_deadline_fails_is_cancelled_and_a_slow_worker_is_kept(worker):
    engine = worker.scheduler.engine
    engine.gate.close()  # the engine holds the job: the worker is busy, its event loop answers
    client = WorkerClient(worker.socket_path, timeout_s=DEADLINE_S)
    try:
        with pytest.raises(ModelTimeout, match="did not answer in time"):
            await client.run(InfillJob(prefix="held"))
        probe = client._probe
        assert probe is not None
        await asyncio.wait_for(probe, SAFETY_S)  # the probe was answered: the worker is only slow
        assert client.connected and worker.dropped == 0 and len(worker.connections) == 1
        engine.gate.open()
        lanes = await eventually_async(lambda: _cancelled(client), "the worker to count the timed-out job as cancelled")
        assert lanes["inline"]["jobs"] == 1
        result = await client.run(InfillJob(prefix="after"))  # the same connection serves the next job
        assert result.text == "<ter>" and len(worker.connections) == 1
    finally:
        engine.gate.open()
        await client.close()


async def _cancelled(client: WorkerClient):
    lanes = (await client.stats())["lanes"]
    return lanes if lanes["inline"]["cancelled"] == 1 else None


async def test_the_in_process_engine_has_the_same_deadline():
    engine = SteppingEngine(steps=2)
    engine.gate.close()
    backend = InProcessBackend(engine, timeout_s=DEADLINE_S)
    try:
        with pytest.raises(ModelTimeout, match="did not answer in time"):
            await backend.run(InfillJob(prefix="held"))
        engine.gate.open()
        await eventually_async(
            lambda: backend.scheduler.lane_stats()["lanes"]["inline"]["cancelled"] == 1, "the job to be cancelled"
        )
        assert (await backend.run(InfillJob(prefix="after"))).text == "<ter>"
    finally:
        engine.gate.open()
        await backend.close()
