"""The language server as a client of `sdls service` (model.url): the remote backend gives what the
in-process scheduler gives, cancels remote jobs, and `sdls serve` uses it with newest-wins intact."""

from __future__ import annotations

import asyncio

import pytest
from lsp_harness import inline, inline_params, open_doc, sdls_session, stats
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from service_harness import GatedEngine, LiveService, shipped_model

from sdls.lsp.backends import open_backend
from sdls.lsp.settings import settings_from
from sdls.service.app import ServiceConfig
from sdls.service.client import ServiceClient
from sdls.service.served_model import ServedModel
from sdls.worker.client import ModelUnavailable
from sdls_model.jobs import DecodeSettings, EditJob, InfillJob

TOKEN = "lsp-" + "q" * 28


def gated_service(**engine_args) -> tuple[LiveService, GatedEngine]:
    engine = GatedEngine(**engine_args)
    return LiveService([ServedModel("gated", engine)], ServiceConfig(token=TOKEN, require_token=True)), engine


async def test_remote_jobs_give_exactly_what_the_scheduler_gives_in_process():
    model = shipped_model()
    try:
        with LiveService([model], ServiceConfig(token=TOKEN, require_token=True)) as live:
            client = ServiceClient(live.url, TOKEN)
            jobs = [
                InfillJob("def add(a, b):\n    return ", "\n", 24, DecodeSettings(), session="file:///a.py"),
                EditJob("def f(x):\n    retrun x\n", 10, 22, settings=DecodeSettings(), max_rounds=1),
            ]
            for job in jobs:
                remote = await client.run(job, "rewrite" if isinstance(job, EditJob) else "inline")
                local = await model.backend.run(job, "inline")
                assert (remote.text, remote.tokens, remote.edits) == (local.text, local.tokens, local.edits)
            text = "def f(x):\n    return x +\n"
            assert await client.doubt(text, 10, len(text)) == await model.backend.doubt(text, 10, len(text))
            assert (await client.describe())["model"] == model.describe()["model"]
            assert "lanes" in (await client.stats())["models"]["sdls"]
            await client.close()
    finally:
        model.close()


async def test_cancelling_a_remote_request_cancels_the_job_on_the_service():
    service, engine = gated_service(free_blocks=1)
    with service:
        client = ServiceClient(service.url, TOKEN)
        task = asyncio.ensure_future(client.run(InfillJob("x = ", max_new_tokens=16), "inline"))
        assert await asyncio.to_thread(engine.holding.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(engine.cancel_seen.wait, 10)  # the gate is still shut
        engine.gate.set()
        lanes = (await client.stats())["models"]["gated"]["lanes"]
        assert lanes["inline"]["cancelled"] == 1
        await client.close()


async def test_sessions_are_kept_apart_per_client():
    service, engine = gated_service(free_blocks=99)
    with service:
        a, b = ServiceClient(service.url, TOKEN), ServiceClient(service.url, TOKEN)
        for client in (a, b):
            await client.run(InfillJob("x", session="file:///src/a.py"))
            await client.close()
    first, second = engine.sessions
    assert first.endswith(":file:///src/a.py") and second.endswith(":file:///src/a.py") and first != second


async def test_an_unreachable_service_or_a_wrong_token_is_model_unavailable_with_the_reason():
    client = ServiceClient("http://127.0.0.1:9", TOKEN)  # the discard port: nothing listens
    with pytest.raises(ModelUnavailable, match="cannot reach"):
        await client.run(InfillJob("x"))
    await client.close()
    service, _ = gated_service()
    with service:
        client = ServiceClient(service.url, "not-the-token")
        with pytest.raises(ModelUnavailable, match="401"):
            await client.run(InfillJob("x"))
        await client.close()


async def test_model_url_selects_the_remote_backend_and_reads_the_token_file(tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    settings, warnings = settings_from({"model": {"url": "http://127.0.0.1:1/", "tokenFile": str(tmp_path / "token")}})
    assert warnings == []
    backend = await open_backend(settings)
    assert isinstance(backend, ServiceClient) and backend._http.headers["authorization"] == f"Bearer {TOKEN}"
    await backend.close()
    bad, _ = settings_from({"model": {"url": "ftp://x"}})
    with pytest.raises(ModelUnavailable, match="http"):
        await open_backend(bad)
    missing, _ = settings_from({"model": {"url": "http://x", "tokenFile": str(tmp_path / "nope")}})
    with pytest.raises(ModelUnavailable, match="tokenFile"):
        await open_backend(missing)


@pytest.mark.slow
async def test_sdls_serve_with_model_url_cancels_superseded_requests_on_the_service():
    service, engine = gated_service(blocks=2, free_blocks=1)
    with service:
        options = {"model": {"url": service.url, "token": TOKEN}, "actions": {"validate": False}}
        async with sdls_session(None, options) as client:
            uri = "file:///remote/a.py"
            open_doc(client, uri, "def f(x):\n    y = \n    z = \n")
            old = asyncio.ensure_future(
                client.protocol.send_request_async(
                    lsp.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 8), msg_id="old"
                )
            )
            assert await asyncio.to_thread(engine.holding.wait, 30)
            engine.holding.clear()
            new = asyncio.ensure_future(inline(client, uri, 2, 8))  # newest wins: the old one is cancelled
            assert await asyncio.to_thread(engine.cancel_seen.wait, 10)
            with pytest.raises(JsonRpcException):
                await asyncio.wait_for(old, 10)
            engine.gate.set()
            await asyncio.wait_for(new, 10)
            server_stats = await stats(client)
            lanes = server_stats.worker.models.gated.lanes
            assert lanes.inline.jobs == 2 and lanes.inline.cancelled == 1
            assert server_stats.worker_info.url == service.url
