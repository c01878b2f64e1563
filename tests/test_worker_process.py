"""The real `sdls worker` process: private socket, one worker per socket, idle exit; `sdls serve --tcp` on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import eventually

from sdls.worker.client import WorkerClient
from sdls_model.jobs import InfillJob

pytestmark = pytest.mark.slow


def start_worker(sock: Path, tiny_model_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sdls",
            "worker",
            "--socket",
            str(sock),
            "--model",
            str(tiny_model_dir),
            "--no-watch",
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def test_worker_socket_is_private_unique_and_the_worker_exits_when_idle(tiny_model_dir, short_tmp_dir):
    sock = short_tmp_dir / "w.sock"
    worker = start_worker(sock, tiny_model_dir, "--idle-exit", "2")
    try:
        eventually(sock.exists, "the worker's socket", interval=0.05)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        # A second worker on the same socket refuses before loading anything.
        second = start_worker(sock, tiny_model_dir)
        assert second.wait(30) == 3 and "already serving" in second.stderr.read()

        async def one_job():
            client = WorkerClient(sock)
            try:
                return await client.run(InfillJob(prefix="def f(x):\n    return ", suffix="\n", max_new_tokens=8))
            finally:
                await client.close()

        result = asyncio.run(one_job())
        assert result.stats.forwards > 0 and len(result.tokens) > 0
        # No clients for 2 s: the worker exits on its own and removes its socket.
        assert worker.wait(30) == 0
        assert not sock.exists()
    finally:
        if worker.poll() is None:
            worker.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_serve_tcp_binds_loopback_only_and_speaks_lsp():
    port = _free_port()
    token = "a-test-token-of-some-length"
    server = subprocess.Popen(
        [sys.executable, "-m", "sdls", "serve", "--tcp", str(port)],
        stderr=subprocess.DEVNULL,
        env={**os.environ, "SDLS_TCP_TOKEN": token},
    )
    try:
        eventually(lambda: _listening_addresses(port), "the server to listen", interval=0.05)
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "processId": None,
                        "rootUri": None,
                        "capabilities": {},
                        "initializationOptions": {"tcpToken": token},
                    },
                }
            ).encode()
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            data = b""
            while b'"id": 1' not in data and b'"id":1' not in data:
                chunk = conn.recv(65536)
                assert chunk, "server closed the connection"
                data += chunk
        assert b"inlineCompletionProvider" in data
    finally:
        server.kill()
        server.wait(10)
