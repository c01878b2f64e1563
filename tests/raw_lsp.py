"""A raw JSON-RPC client of `sdls serve` (not pygls): it writes exactly the bytes a test gives it, so
malformed framing and messages reach the server as they are, and it records every message the
server sends back (`answers[id]`: each response to that id, to check there is exactly one)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from waiting import SAFETY_S

from sdls.lsp.framing import Frame, FrameDecoder

REPO = Path(__file__).resolve().parents[1]


def frame(message: Any) -> bytes:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class RawClient:
    def __init__(self, write, read):
        self._write, self._read = write, read
        self.answers: dict[Any, list[dict]] = defaultdict(list)
        self.notifications: list[dict] = []
        self.server_requests: list[dict] = []
        self.unparsed: list[bytes] = []
        self.answered_twice: set = set()  # ids (not null) that got more than one response
        self._cond = threading.Condition()
        self._closed = False
        self._ids = iter(range(10**6, 10**7))
        threading.Thread(target=self._read_loop, daemon=True).start()

    def _read_loop(self) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                chunk = self._read(65536)
            except OSError:
                chunk = b""
            items = decoder.feed(chunk) if chunk else []
            with self._cond:
                for item in items:
                    self._take(item)
                if not chunk:
                    self._closed = True
                self._cond.notify_all()
            if not chunk:
                return

    def _take(self, item) -> None:
        if not isinstance(item, Frame):
            self.unparsed.append(item.body)
            return
        message = json.loads(item.body)
        if "method" in message and "id" in message:
            self.server_requests.append(message)
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})  # e.g. workspace/configuration
        elif "method" in message:
            self.notifications.append(message)
        else:
            answers = self.answers[message.get("id")]
            answers.append(message)
            if len(answers) == 2 and message.get("id") is not None:
                self.answered_twice.add(message.get("id"))

    # -- writing ------------------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        self._write(data)

    def send(self, message: Any) -> None:
        self._write(frame(message))

    def request(self, method: str, params: Any = None, msg_id: Any = None) -> Any:
        """Send a request (params omitted when None) and return its id."""
        msg_id = next(self._ids) if msg_id is None else msg_id
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return msg_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    # -- reading ------------------------------------------------------------------------------
    def wait_for(self, msg_id: Any, timeout: float = SAFETY_S) -> dict:
        with self._cond:
            if not self._cond.wait_for(lambda: self.answers.get(msg_id) or self._closed, timeout):
                raise TimeoutError(f"no answer to request {msg_id!r} within {timeout} s")
            if not self.answers.get(msg_id):
                raise ConnectionError(f"the server closed before it answered {msg_id!r}")
            return self.answers[msg_id][0]

    def answer_counts(self) -> dict:
        """How many responses each id got so far (a snapshot: the reader thread keeps adding)."""
        with self._cond:
            return {i: len(a) for i, a in self.answers.items()}

    def duplicates(self) -> dict:
        """The ids (not null) answered more than once, with their counts."""
        with self._cond:
            return {i: len(self.answers[i]) for i in self.answered_twice}

    def all_answers(self) -> list[dict]:
        with self._cond:
            return [m for a in self.answers.values() for m in a]

    def call(self, method: str, params: Any = None, msg_id: Any = None) -> dict:
        return self.wait_for(self.request(method, params, msg_id))

    def barrier(self) -> dict:
        """A round trip: everything sent before it has been read by the server."""
        return self.call("sdls/stats")

    def initialize(self, options: dict | None = None, root: Path | None = None) -> dict:
        params = {
            "processId": None,
            "rootUri": root.as_uri() if root else None,
            "capabilities": {},
            "initializationOptions": options or {},
        }
        answer = self.call("initialize", params)
        self.notify("initialized", {})
        return answer

    def wait_closed(self, timeout: float = SAFETY_S) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._closed, timeout)


class ServerProcess:
    """`sdls serve` (or another argv) on stdio, with a RawClient on its pipes."""

    def __init__(self, argv: list[str], env: dict | None = None, cwd: Path | None = None):
        self.stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"sdls-raw-{os.getpid()}-{id(self)}.log"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        stdin, stdout = self.proc.stdin, self.proc.stdout

        def write(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        self.client = RawClient(write, stdout.read1 if hasattr(stdout, "read1") else stdout.read)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        if self.alive():
            try:
                self.client.call("shutdown")
                self.client.notify("exit")
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(10)
            except (OSError, TimeoutError, ConnectionError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.close()
        self.stderr_path.unlink(missing_ok=True)


def serve_argv(*extra: str) -> list[str]:
    return [sys.executable, "-m", "sdls", "serve", *extra]


def tcp_client(port: int) -> tuple[RawClient, socket.socket]:
    conn = socket.create_connection(("127.0.0.1", port), timeout=SAFETY_S)
    conn.settimeout(None)
    return RawClient(conn.sendall, conn.recv), conn


def hang_up(conn: socket.socket) -> None:
    """Close a client's connection for real (a plain close waits for its reader thread's recv)."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()
