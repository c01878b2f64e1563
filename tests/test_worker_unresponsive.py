"""A real `sdls worker` stopped with SIGSTOP (issue 16): every model request is answered with
"the model did not answer in time", the worker is found unresponsive (a probe gets nothing), and
the server recovers: a worker it may start is killed and replaced; one it did not start is left
alone and served again once it resumes. Deadlines are small settings; no test asserts a duration.
Stopped workers are resumed and killed in cleanup."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from contextlib import suppress

import pytest
from lsp_harness import inline, open_doc, sdls_session, stats
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from waiting import SAFETY_S, eventually, eventually_async

from sdls.worker.client import ModelTimeout, WorkerClient, WorkerError
from sdls_model.jobs import InfillJob

pytestmark = pytest.mark.slow
DEADLINE_S = 3.0  # the tiny model answers in milliseconds: only a stopped worker misses this
SOURCE = "def add(a, b):\n    return \n\n\ndef area(r):\n    pass\n\n\nprint(add(1, 2)\n"
JOB = InfillJob(prefix="def f(x):\n    return ", suffix="\n", max_new_tokens=4)


def _release(pid: int | None) -> None:
    """Resume and kill a worker the test stopped (whatever state it is in now)."""
    for sig in (signal.SIGCONT, signal.SIGKILL):
        with suppress(ProcessLookupError, TypeError):
            os.kill(pid, sig)


async def test_a_stopped_worker_it_did_not_start_is_left_alone_and_serves_again(tiny_model_dir, short_tmp_dir):
    sock = short_tmp_dir / "w.sock"
    cmd = [sys.executable, "-m", "sdls", "worker", "--socket", str(sock), "--model", str(tiny_model_dir), "--no-watch"]
    worker = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    client = WorkerClient(sock, timeout_s=DEADLINE_S)  # spawn_args None: it never starts or kills one
    try:
        await asyncio.to_thread(eventually, sock.exists, "the worker's socket", interval=0.05)
        assert (await client.run(JOB)).stats.forwards > 0
        worker.send_signal(signal.SIGSTOP)
        with pytest.raises(ModelTimeout, match="did not answer in time"):
            await asyncio.wait_for(client.run(JOB), SAFETY_S)  # a regression fails here, not hangs
        await asyncio.wait_for(client._probe, SAFETY_S)
        assert not client.connected  # given up: nothing waits on it any more
        with pytest.raises(WorkerError):  # a new connection gets no handshake from a stopped worker
            await asyncio.wait_for(client.run(JOB), SAFETY_S)
        assert worker.poll() is None  # not this client's to kill
        worker.send_signal(signal.SIGCONT)
        result = await eventually_async(lambda: _served(client), "the resumed worker to serve again")
        assert result.stats.forwards > 0 and client.info["pid"] == worker.pid
    finally:
        await client.close()
        _release(worker.pid)
        worker.wait(SAFETY_S)


async def test_a_stopped_worker_found_at_connect_is_replaced_by_a_client_that_may_start_one(
    tiny_model_dir, short_tmp_dir
):
    sock = short_tmp_dir / "w.sock"
    cmd = [sys.executable, "-m", "sdls", "worker", "--socket", str(sock), "--model", str(tiny_model_dir), "--no-watch"]
    stopped = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    spawn = ["--model", str(tiny_model_dir), "--no-watch", "--idle-exit", "30"]
    client = WorkerClient(sock, spawn_args=spawn, timeout_s=DEADLINE_S)
    try:
        await asyncio.to_thread(eventually, sock.exists, "the worker's socket", interval=0.05)
        stopped.send_signal(signal.SIGSTOP)  # stopped before this client ever spoke to it
        result = await asyncio.wait_for(client.run(JOB), SAFETY_S)  # no hello: killed, a new one started
        assert result.stats.forwards > 0
        assert stopped.wait(SAFETY_S) == -signal.SIGKILL
        assert client.info["pid"] not in (None, stopped.pid) and client.process is not None
    finally:
        await client.close()
        _release(stopped.pid)
        if client.process is not None:
            _release(client.process.pid)
            client.process.wait(SAFETY_S)


async def _served(client: WorkerClient):
    try:
        return await client.run(JOB)
    except WorkerError:
        return None


async def test_the_server_answers_every_model_request_and_replaces_a_stopped_worker(tiny_model_dir):
    options = {"worker": {"timeoutS": DEADLINE_S}, "actions": {"validate": False}, "hover": {"doubt": False}}
    stopped = None
    async with sdls_session(tiny_model_dir, options) as client:
        try:
            uri = "file:///stopped/a.py"
            open_doc(client, uri, SOURCE)
            await inline(client, uri, 1, 11)  # the worker is up
            stopped = (await stats(client)).worker_info.pid
            actions = await client.text_document_code_action_async(
                lsp.CodeActionParams(
                    lsp.TextDocumentIdentifier(uri),
                    lsp.Range(lsp.Position(5, 4), lsp.Position(5, 8)),
                    lsp.CodeActionContext(diagnostics=[]),
                )
            )
            offers = {a.title: a for a in actions}
            os.kill(stopped, signal.SIGSTOP)
            answers = await asyncio.wait_for(
                asyncio.gather(
                    client.text_document_hover_async(
                        lsp.HoverParams(lsp.TextDocumentIdentifier(uri), lsp.Position(8, 6))
                    ),
                    client.code_action_resolve_async(offers["Rewrite selection"]),
                    client.code_action_resolve_async(offers["Fill in stub"]),
                    inline(client, uri, 5, 8),  # not the cached completion at (1, 11): a job
                    stats(client),
                    return_exceptions=True,
                ),
                SAFETY_S,
            )  # a regression fails here, not hangs
            *failed, during = answers
            for answer in failed:
                assert isinstance(answer, JsonRpcException), answer
                assert answer.code == lsp.LSPErrorCodes.RequestFailed and "did not answer in time" in str(answer)
            assert "did not answer in time" in during.worker.error
            # The server gives the stopped worker up, kills it and starts another; requests are served again.
            await eventually_async(lambda: _completes(client, uri, 5, 8), "a new worker to serve", interval=0.2)
            replaced = (await stats(client)).worker_info.pid
            assert replaced != stopped
            await asyncio.to_thread(eventually, lambda: not _alive(stopped), "the stopped worker to be gone")
            hover = await client.text_document_hover_async(
                lsp.HoverParams(lsp.TextDocumentIdentifier(uri), lsp.Position(8, 6))
            )
            assert hover is None or "syntax error" in hover.contents.value
        finally:
            _release(stopped)


async def _completes(client, uri: str, line: int, col: int) -> bool:
    try:
        await inline(client, uri, line, col)
    except JsonRpcException:
        return False
    return True


def _alive(pid: int) -> bool:
    """Whether `pid` is still a running process (not gone, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
