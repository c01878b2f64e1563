"""The language server's side of the worker socket: connect (or start a worker), submit, cancel.

Failure rules: a request never waits on a dead worker. When the connection drops, every pending
request fails at once with WorkerError; a worker this client started is restarted in the
background with exponential backoff, and requests that arrive while a restart is pending fail fast
with the reason instead of queueing behind it.

Nor on a wedged one: every request has a deadline (`timeout_s`); one that passes it is cancelled in
the worker and fails with ModelTimeout. The worker is then probed (a `stats` request, answered by
its event loop even while the engine is busy): a worker that answers is only slow; one that does
not within the probe timeout (stopped with SIGSTOP, hung) is given up: its connection is dropped,
failing what waits on it, and where this client may start workers it is killed (the process at the
other end of the socket, SO_PEERCRED) and replaced by a fresh one. A worker that sends no hello
within the probe timeout when connected to is unresponsive the same way (the kernel accepts
connections for a stopped process).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .paths import UnsafeSocketPath, check_socket_path, log_path_for
from .protocol import MAX_FRAME_BYTES, MAX_IN_FLIGHT, ProtocolError, check_hello, encode_frame, hello, read_frame
from .wire import Job, doubt_from_wire, job_to_wire, result_from_wire

log = logging.getLogger(__name__)


class WorkerError(Exception):
    """A job could not be served: the worker died, refused it, or the engine failed."""


class ModelUnavailable(WorkerError):
    """No worker could be started: typically a missing or corrupt model (the message says which)."""


class JobRefused(WorkerError):
    """This job alone is refused (over a limit on what one job may cost); the model serves others."""


class ModelTimeout(WorkerError):
    """The model did not answer a request before its deadline."""


DEFAULT_TIMEOUT_S = 60.0  # a job on a busy CPU takes seconds; a minute means something is wrong
MAX_PROBE_S = 10.0  # a stats answer takes milliseconds: ten seconds of silence is a wedged worker


def timed_out(timeout_s: float) -> ModelTimeout:
    return ModelTimeout(f"the model did not answer in time ({timeout_s:g} s, setting worker.timeoutS)")


def _log_tail(path: Path, limit: int = 2000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    # The worker's own one-line verdict ("sdls worker: cannot load the model: ...") says it best.
    verdicts = [line for line in lines if line.startswith("sdls worker:")]
    return verdicts[-1] if verdicts else "\n".join(lines[-5:])[-limit:]


class WorkerClient:
    def __init__(
        self,
        socket_path: str | Path,
        spawn_args: list[str] | None = None,
        start_timeout_s: float = 120.0,
        max_frame: int = MAX_FRAME_BYTES,
        backoff_s: tuple[float, float] = (0.5, 8.0),
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ):
        self.socket_path = Path(socket_path)
        self.spawn_args = spawn_args  # `sdls worker` arguments; None = never start one
        self.start_timeout_s = start_timeout_s
        self.max_frame = max_frame
        self.backoff_min, self.backoff_max = backoff_s
        self.timeout_s = timeout_s  # every request's deadline
        self.probe_timeout_s = min(timeout_s, MAX_PROBE_S)
        self.info: dict[str, Any] = {}  # the worker's hello: pid, model description
        self.process: subprocess.Popen | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._connect_lock = asyncio.Lock()
        self._backoff = self.backoff_min
        self._retry_at = 0.0
        self._last_error: str | None = None
        self._closing = False
        self._probe: asyncio.Task | None = None
        # Jobs the worker holds for this client (until it answers them, cancelled ones too): never
        # more than it takes, so a wave of 100 stubs queues here instead of being refused there.
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._held: set[int] = set()

    @property
    def connected(self) -> bool:
        return self._writer is not None

    # -- connecting ---------------------------------------------------------------------------
    async def connect(self) -> None:
        if self.connected:
            return
        async with self._connect_lock:
            if self.connected:
                return
            wait = self._retry_at - time.monotonic()
            if wait > 0 and self._last_error:
                raise WorkerError(f"{self._last_error} (retrying in {wait:.1f} s)")
            try:
                await self._connect_or_spawn()
            except WorkerError as exc:
                self._schedule_retry(str(exc))
                raise
            self._backoff = self.backoff_min
            self._last_error = None

    def _schedule_retry(self, reason: str) -> None:
        self._last_error = reason
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.backoff_max)

    async def _open(self) -> bool:
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path), limit=self.max_frame + 16)
        except (FileNotFoundError, ConnectionRefusedError, OSError):
            return False
        try:
            writer.write(encode_frame(hello(client="sdls-lsp", pid=os.getpid())))
            # A stopped worker still accepts connections (the kernel does): its silence is the sign.
            reply = await asyncio.wait_for(read_frame(reader, self.max_frame), self.probe_timeout_s)
            if reply is None:
                raise ProtocolError("the worker closed the connection during the handshake")
            if reply.get("type") == "error":
                raise ProtocolError(reply.get("message", "refused"))
            check_hello(reply)
        except asyncio.TimeoutError:
            pid = _worker_pid(writer, None)
            writer.close()
            silent = f"the model worker on {self.socket_path} (pid {pid}) sent no hello in {self.probe_timeout_s:g} s"
            if self.spawn_args is not None and pid is not None and _kill(pid):
                log.warning("%s: replacing it", silent)
                await self._until_refused()
                return False  # its socket is stale now: the caller starts a new worker
            raise WorkerError(f"worker handshake failed: {silent}") from None
        except (ProtocolError, OSError) as exc:
            writer.close()
            raise WorkerError(f"worker handshake failed on {self.socket_path}: {exc}") from exc
        self.info = reply
        self._writer = writer
        self._reader_task = asyncio.ensure_future(self._read_loop(reader, writer))
        return True

    async def _until_refused(self) -> None:
        """Wait (a few seconds at most) until a killed worker's socket refuses connections, so the
        worker started next finds it stale rather than taken."""
        for _ in range(100):
            try:
                _, probe = await asyncio.open_unix_connection(str(self.socket_path))
            except OSError:
                return
            probe.close()
            await asyncio.sleep(0.05)

    async def _connect_or_spawn(self) -> None:
        try:
            check_socket_path(self.socket_path)  # before connecting: nothing there is touched
        except UnsafeSocketPath as exc:
            raise ModelUnavailable(str(exc)) from None
        if await self._open():
            return
        if self.spawn_args is None:
            raise ModelUnavailable(f"no model worker is listening on {self.socket_path}")
        self._spawn()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if await self._open():
                return
            code = self.process.poll()
            if code is not None and code != 3:  # 3 = another worker won the race: keep polling its socket
                detail = _log_tail(log_path_for(self.socket_path)) or f"exit status {code}"
                raise ModelUnavailable(f"the model worker failed to start: {detail}")
        raise ModelUnavailable(
            f"the model worker did not come up within {self.start_timeout_s:.0f} s "
            f"(log: {log_path_for(self.socket_path)})"
        )

    def _spawn(self) -> None:
        log_file = open(log_path_for(self.socket_path), "w")  # noqa: SIM115 - the worker's stderr, closed below
        cmd = [sys.executable, "-m", "sdls", "worker", "--socket", str(self.socket_path), *self.spawn_args]
        log.info("starting a model worker: %s", " ".join(cmd))
        # Its own session: the worker outlives this server so other windows keep sharing it.
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True
        )
        log_file.close()

    # -- reading ------------------------------------------------------------------------------
    async def _read_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reason = "the model worker closed the connection"
        try:
            while (message := await read_frame(reader, self.max_frame)) is not None:
                self._release(message.get("id"))
                future = self._pending.pop(message.get("id"), None)
                if message["type"] == "error" and message.get("id") is None:
                    reason = f"the model worker dropped the connection: {message.get('message')}"
                elif future is None or future.done():
                    continue
                elif message["type"] == "result":
                    future.set_result(message.get("result"))
                else:
                    future.set_exception(WorkerError(message.get("message", "the worker reported an error")))
        except (ProtocolError, OSError) as exc:
            reason = f"the connection to the model worker broke: {exc}"
        except asyncio.CancelledError:
            reason = "the client is closing"
        self._lost(writer, reason)

    def _lost(self, writer: asyncio.StreamWriter, reason: str) -> None:
        if self._writer is not writer:  # this connection's loss was handled already (a failed probe)
            writer.close()
            return
        self._writer = None
        writer.close()
        for msg_id in list(self._held):  # that worker holds nothing for us any more
            self._release(msg_id)
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(WorkerError(reason))
        if self._closing:
            return
        log.warning("%s", reason)
        if self.spawn_args is not None:
            # Restart in the background after a backoff, so the next request finds a warm worker.
            self._schedule_retry(reason + "; restarting it")
            asyncio.get_running_loop().call_later(
                self._retry_at - time.monotonic() + 0.01, lambda: asyncio.ensure_future(self._quiet_connect())
            )

    async def _quiet_connect(self) -> None:
        try:
            await self.connect()
        except WorkerError as exc:
            log.warning("%s", exc)

    # -- a worker that stopped answering -------------------------------------------------------
    def _suspect(self, writer: asyncio.StreamWriter) -> None:
        """A request passed its deadline: probe the worker, unless a probe is under way."""
        if self._writer is writer and (self._probe is None or self._probe.done()):
            self._probe = asyncio.ensure_future(self._probe_worker(writer))

    async def _probe_worker(self, writer: asyncio.StreamWriter) -> None:
        msg_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        writer.write(encode_frame({"type": "stats", "id": msg_id}))
        try:
            await asyncio.wait_for(future, self.probe_timeout_s)
            log.info("the model worker is slow but answering")
            return
        except WorkerError:
            return  # the connection went meanwhile: _lost handled it
        except asyncio.TimeoutError:
            self._pending.pop(msg_id, None)
        if self._writer is not writer:
            return
        pid = _worker_pid(writer, self.info.get("pid"))
        reason = f"the model worker (pid {pid}) stopped answering: no answer to a probe in {self.probe_timeout_s:g} s"
        if self.spawn_args is not None and pid is not None:
            _kill(pid)
        self._lost(writer, reason)  # fails what waits on it; a client that spawns starts a new one

    # -- requests -----------------------------------------------------------------------------
    async def _request(self, message: dict[str, Any]) -> Any:
        job = message["type"] in ("submit", "doubt")
        if job:
            try:
                await asyncio.wait_for(self._slots.acquire(), self.timeout_s)
            except asyncio.TimeoutError:
                raise timed_out(self.timeout_s) from None
        try:
            await self.connect()
        except BaseException:
            if job:
                self._slots.release()
            raise
        writer = self._writer
        msg_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        if job:
            self._held.add(msg_id)  # the slot is now this id's, until the worker answers it
        try:
            writer.write(encode_frame({**message, "id": msg_id}, self.max_frame))
        except ProtocolError as exc:
            self._pending.pop(msg_id, None)
            self._release(msg_id)
            raise WorkerError(str(exc)) from exc
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except asyncio.TimeoutError:
            self._forget(msg_id, message)
            self._suspect(writer)
            raise timed_out(self.timeout_s) from None
        except asyncio.CancelledError:
            self._forget(msg_id, message)  # the LSP request was cancelled
            raise

    def _release(self, msg_id: Any) -> None:
        if msg_id in self._held:
            self._held.discard(msg_id)
            self._slots.release()

    def _forget(self, msg_id: int, message: dict[str, Any]) -> None:
        """Nobody waits for `msg_id` any more: stop its job within one denoising step."""
        self._pending.pop(msg_id, None)
        if self._writer is not None and message["type"] in ("submit", "doubt"):
            self._writer.write(encode_frame({"type": "cancel", "id": msg_id}))

    async def run(self, job: Job, lane: str = "inline"):
        return result_from_wire(await self._request({"type": "submit", "lane": lane, "job": job_to_wire(job)}))

    async def doubt(self, text: str, start: int, end: int) -> list[tuple[int, int, float]]:
        return doubt_from_wire(await self._request({"type": "doubt", "text": text, "start": start, "end": end}))

    async def describe(self) -> dict:
        return await self._request({"type": "describe"})

    async def stats(self) -> dict:
        return await self._request({"type": "stats"})

    async def close(self) -> None:
        self._closing = True
        if self._probe is not None:
            self._probe.cancel()
        if self._reader_task is not None:
            self._reader_task.cancel()
            try:
                await self._reader_task
            except BaseException:
                pass


def _kill(pid: int) -> bool:
    """Kill an unresponsive worker (even a stopped process dies; its socket is then stale)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError) as exc:
        log.warning("could not stop the model worker %s: %s", pid, exc)
        return False
    return True


def _worker_pid(writer: asyncio.StreamWriter, hello_pid: Any) -> int | None:
    """The pid of the process at the other end of the worker's socket, as the kernel knows it
    (SO_PEERCRED, Linux), if it runs as this user; elsewhere the pid its hello gave."""
    sock = writer.get_extra_info("socket")
    try:
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (AttributeError, OSError):  # no SO_PEERCRED here (macOS)
        return hello_pid if isinstance(hello_pid, int) and hello_pid > 0 else None
    return pid if uid == os.getuid() and pid > 0 else None
