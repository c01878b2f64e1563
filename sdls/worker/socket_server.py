"""The worker's socket side: accepts clients on a 0600 Unix socket and feeds the scheduler.

Every connection is independent: a client that sends garbage, an oversized frame or the wrong
protocol version is dropped alone. A client that disconnects has its queued and running jobs
cancelled, so a closed editor never keeps the model busy.

What clients may cost is bounded, each refusal clear and alone: at most MAX_CLIENTS connections
(one more is told why and closed, the others carry on), at most MAX_IN_FLIGHT jobs in flight per
connection (one more gets an error for its id), and, with a memory budget, a job whose estimated
need (sdls_model.job_memory, from the model's config and the job's lengths) exceeds it gets an
error for its id before it reaches the engine.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdls.memory import rss_mb
from sdls_model.job_memory import budget_problem
from sdls_model.jobs import EditJob

from .paths import UnsafeSocketPath, check_socket_path, lock_path_for, removable_stale_socket
from .protocol import LANES, MAX_FRAME_BYTES, MAX_IN_FLIGHT, ProtocolError, check_hello, encode_frame, hello, read_frame
from .scheduler import DoubtRequest, Scheduler, Ticket
from .wire import BadJob, job_from_wire, result_to_wire

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT_S = 10.0
MAX_CLIENTS = 32  # editors share one worker: a few windows each, with room to spare


class SocketInUse(RuntimeError):
    """Another live worker already serves this socket."""


def socket_alive(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class _Connection:
    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.tickets: dict[int, Ticket] = {}
        self.closed = False


class WorkerServer:
    def __init__(
        self,
        scheduler: Scheduler,
        describe: Callable[[], dict],
        socket_path: str | Path,
        max_frame: int = MAX_FRAME_BYTES,
        idle_exit_s: float | None = None,
        max_clients: int = MAX_CLIENTS,
        max_in_flight: int = MAX_IN_FLIGHT,
        memory_budget: int | None = None,
    ):
        self.scheduler = scheduler
        self.describe = describe
        self.socket_path = Path(socket_path)
        self.max_frame = max_frame
        self.idle_exit_s = idle_exit_s
        self.max_clients, self.max_in_flight = max_clients, max_in_flight
        self.memory_budget = memory_budget  # bytes one job may need; None: no budget
        self.connections: set[_Connection] = set()
        self.dropped = 0  # connections closed for protocol errors
        self.refused = 0  # requests answered with an error for an invalid job (the connection stays)
        self.turned_away = 0  # connections refused: MAX_CLIENTS were connected
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._lock_file: Any = None

    # -- lifecycle ----------------------------------------------------------------------------
    def _claim_socket(self) -> None:
        """Take the per-socket lock, so two workers racing to start cannot both bind."""
        check_socket_path(self.socket_path)  # a file, folder or link there is the user's: refused
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = os.open(lock_path_for(self.socket_path), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        self._lock_file = os.fdopen(lock, "w")  # held while the worker lives
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SocketInUse(f"another worker is starting or serving on {self.socket_path}") from None
        check_socket_path(self.socket_path)  # again, under the lock
        if os.path.lexists(self.socket_path):
            if socket_alive(self.socket_path):
                raise SocketInUse(f"a worker is already serving on {self.socket_path}")
            if not removable_stale_socket(self.socket_path):
                raise UnsafeSocketPath(
                    f"{self.socket_path} is a dead socket that sdls did not make (not this user's, or its "
                    "directory is open to others); remove it yourself or choose another worker.socket"
                )
            self.socket_path.unlink()  # left behind by a worker that died

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._claim_socket()
        old_umask = os.umask(0o177)  # the socket file is created 0600: only this user may connect
        try:
            server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path), limit=64 * 1024)
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o600)
        made = os.lstat(self.socket_path).st_ino
        log.info("worker listening on %s", self.socket_path)
        if ready:
            ready()
        idle = asyncio.ensure_future(self._watch_idle()) if self.idle_exit_s else None
        try:
            async with server:
                await self._stop.wait()
        finally:
            if idle:
                idle.cancel()
            for conn in list(self.connections):
                self._close(conn)
            try:
                if os.lstat(self.socket_path).st_ino == made:  # still the socket this worker made
                    self.socket_path.unlink()
            except FileNotFoundError:
                pass
            self._lock_file.close()

    def stop(self) -> None:
        self._stop.set()

    async def _watch_idle(self) -> None:
        idle_since = self._loop.time()
        while True:
            await asyncio.sleep(min(1.0, self.idle_exit_s))
            if self.connections:
                idle_since = self._loop.time()
            elif self._loop.time() - idle_since >= self.idle_exit_s:
                log.info("no clients for %.0f s: exiting", self.idle_exit_s)
                self.stop()
                return

    # -- one connection -----------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(writer)
        if len(self.connections) >= self.max_clients:
            self.turned_away += 1
            log.warning("refused a client: %d are connected already", len(self.connections))
            try:  # its hello first: closing on unread bytes would reset the connection, losing the reason
                await asyncio.wait_for(read_frame(reader, self.max_frame), HANDSHAKE_TIMEOUT_S)
            except (ProtocolError, asyncio.TimeoutError, ConnectionError, OSError):
                pass
            self._send(conn, {"type": "error", "message": f"the worker serves at most {self.max_clients} clients"})
            self._close(conn)
            return
        self.connections.add(conn)
        try:
            first = await asyncio.wait_for(read_frame(reader, self.max_frame), HANDSHAKE_TIMEOUT_S)
            if first is None:
                return
            check_hello(first)
            self._send(conn, hello(pid=os.getpid(), model=self.describe()))
            while (message := await read_frame(reader, self.max_frame)) is not None:
                try:
                    self._dispatch(conn, message)
                except BadJob as exc:  # one bad request: refuse it, keep the connection and its other jobs
                    self.refused += 1
                    self._send(conn, {"type": "error", "id": message.get("id"), "message": str(exc)})
        except (ProtocolError, asyncio.TimeoutError) as exc:
            self.dropped += 1
            reason = str(exc) or "no hello within the handshake timeout"
            log.warning("dropping a client: %s", reason)
            self._send(conn, {"type": "error", "message": f"protocol error: {reason}"})
        except (ConnectionError, OSError):
            pass
        finally:
            self._close(conn)

    def _dispatch(self, conn: _Connection, message: dict) -> None:
        kind, msg_id = message["type"], message.get("id")
        if kind in ("submit", "doubt", "describe", "stats") and not isinstance(msg_id, int):
            raise ProtocolError(f"{kind} needs an integer id")
        if kind == "submit":
            lane = message.get("lane")
            if msg_id in conn.tickets:
                raise ProtocolError(f"id {msg_id} is already in flight")  # its answer would go to the wrong job
            if lane not in LANES:
                raise BadJob(f"unknown lane {lane!r}")
            job = job_from_wire(message.get("job"))
            self._admit(conn, job)
            self._enqueue(conn, msg_id, job, lane)
        elif kind == "doubt":
            text, start, end = message.get("text"), message.get("start"), message.get("end")
            if not (
                isinstance(text, str)
                and isinstance(start, int)
                and isinstance(end, int)
                and 0 <= start <= end <= len(text)
            ):
                raise BadJob("doubt needs text and a region start <= end inside it")
            self._admit(conn, EditJob(text, start, end, max_rounds=0))  # what the engine runs for it
            self._enqueue(conn, msg_id, DoubtRequest(text, start, end), "inline")
        elif kind == "cancel":
            ticket = conn.tickets.get(msg_id)
            if ticket is not None:
                self.scheduler.cancel(ticket)
        elif kind == "describe":
            self._send(conn, {"type": "result", "id": msg_id, "result": self.describe()})
        elif kind == "stats":
            self._send(conn, {"type": "result", "id": msg_id, "result": self.stats()})
        else:
            raise ProtocolError(f"unknown message type {kind!r}")

    def _admit(self, conn: _Connection, job: Any) -> None:
        """Refuse (BadJob: an error for its id alone) a job this connection or the budget has no room for."""
        if len(conn.tickets) >= self.max_in_flight:
            raise BadJob(f"this client has {len(conn.tickets)} jobs in flight, the most the worker takes; wait for one")
        need = getattr(self.scheduler.engine, "memory_need", None)
        if (
            self.memory_budget is not None
            and need is not None
            and (problem := budget_problem(need(job), self.memory_budget))
        ):
            raise BadJob(problem)

    def stats(self) -> dict:
        return {
            **self.scheduler.lane_stats(),
            "clients": len(self.connections),
            "dropped": self.dropped,
            "refused": self.refused,
            "turned_away": self.turned_away,
            "pid": os.getpid(),
            "rss_mb": rss_mb(),
            "peak_rss_mb": rss_mb("VmHWM"),
        }

    def _enqueue(self, conn: _Connection, msg_id: int, job: Any, lane: str) -> None:
        def done(result: Any, error: str | None) -> None:  # runs on the engine thread
            self._loop.call_soon_threadsafe(self._deliver, conn, msg_id, result, error)

        conn.tickets[msg_id] = self.scheduler.submit(job, lane, done)

    def _deliver(self, conn: _Connection, msg_id: int, result: Any, error: str | None) -> None:
        conn.tickets.pop(msg_id, None)
        if error is not None:
            self._send(conn, {"type": "error", "id": msg_id, "message": error})
        elif isinstance(result, dict):
            self._send(conn, {"type": "result", "id": msg_id, "result": result})
        else:
            self._send(conn, {"type": "result", "id": msg_id, "result": result_to_wire(result)})

    def _send(self, conn: _Connection, message: dict) -> None:
        if conn.closed:
            return
        try:
            conn.writer.write(encode_frame(message, self.max_frame))
        except ProtocolError as exc:  # a result too big to send: tell the client instead
            conn.writer.write(encode_frame({"type": "error", "id": message.get("id"), "message": str(exc)}))
        except (ConnectionError, RuntimeError):
            self._close(conn)

    def _close(self, conn: _Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
        if not conn.closed:
            conn.closed = True
            for ticket in list(conn.tickets.values()):
                self.scheduler.cancel(ticket)
            conn.tickets.clear()
            try:
                conn.writer.close()
            except Exception:
                pass
