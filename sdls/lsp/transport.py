"""The server's transports: stdio, and TCP for one authenticated client. Both read raw bytes into
framing.FrameDecoder and hand each frame to the protocol (rpc_protocol.AnswerEveryRequest), in
place of pygls' own loop (pygls/io_.py `run_async`), which trusts the framing it is given.

TCP (`sdls serve --tcp PORT`): any local user can connect to a loopback port, so the first message
of a connection must be `initialize` carrying `initializationOptions.tcpToken`, the token from the
token file (0600) or SDLS_TCP_TOKEN. One client is served at a time: a connection made while one is
served is closed at once; one that fails the token, or closes before it sent it (a port scan), is
closed and the server keeps listening. The served client disconnecting ends the server, as stdio's
end of input does.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

from .framing import Frame, FrameDecoder, Refused
from .jsonrpc_checks import INVALID_REQUEST, Answer, is_id

log = logging.getLogger(__name__)
CHUNK_BYTES = 64 * 1024
TOKEN_OPTION = "tcpToken"


async def pump(read: Callable[[], Awaitable[bytes]], handle: Callable[[Frame | Refused], None], stop) -> None:
    """Feed `handle` every frame read until the input ends (or `stop` is set)."""
    decoder = FrameDecoder()
    while not stop.is_set():
        chunk = await read()
        if not chunk:
            break
        for item in decoder.feed(chunk):
            try:
                handle(item)
            except Exception:  # one message must never end the loop that serves the others
                log.exception("unable to handle a message")
    for item in decoder.close():
        log.warning("input ended: %s", getattr(item, "reason", "a message without its end"))


def serve_stdio(server: Any, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """What pygls' start_io does, with sdls's reader."""
    from pygls.io_ import StdoutWriter

    server._stop_event = stop = threading.Event()
    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    source = stdin or sys.stdin.buffer
    read1 = getattr(source, "read1", source.read)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await pump(
            lambda: loop.run_in_executor(server.thread_pool, read1, CHUNK_BYTES), server.protocol.handle_frame, stop
        )

    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("the client's end of stdio closed; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


class TcpGate:
    """Who may talk to the server over TCP: one client, holding the token."""

    def __init__(self, server: Any, token: str):
        self.server, self.token = server, token
        self.served: asyncio.StreamWriter | None = None

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self.served is not None:
            log.warning("refused a TCP connection from %s: a client is already served", peer)
            writer.close()
            return
        decoder = FrameDecoder()
        try:
            while True:
                chunk = await reader.read(CHUNK_BYTES)
                if not chunk:
                    log.info("a TCP connection from %s closed before it authenticated", peer)
                    return
                items = decoder.feed(chunk)
                if items:
                    break
            first = self._admit(items[0], writer)
            if first is None:
                return
        finally:
            if self.served is not writer:
                writer.close()
        log.info("serving the TCP client at %s", peer)
        protocol = self.server.protocol
        protocol.set_writer(writer)
        for item in [first, *items[1:]]:
            protocol.handle_frame(item)
        stop = self.server._stop_event
        await pump(lambda: reader.read(CHUNK_BYTES), protocol.handle_frame, stop)
        log.info("the TCP client at %s disconnected; shutting down", peer)
        self.server.shutdown()

    def _admit(self, item: Frame | Refused, writer: asyncio.StreamWriter) -> Frame | None:
        """The first frame without its token if it is an initialize holding the right one; None
        (after answering why, where an id can be read) if not."""
        data: Any = None
        if isinstance(item, Frame):
            try:
                data = json.loads(item.body)
            except (ValueError, RecursionError):
                data = None
        params = data.get("params") if isinstance(data, dict) else None
        options = params.get("initializationOptions") if isinstance(params, dict) else None
        given = options.pop(TOKEN_OPTION, None) if isinstance(options, dict) else None
        ok = (
            data.get("method") == "initialize"
            and isinstance(given, str)
            and hmac.compare_digest(given.encode(), self.token.encode())
            if isinstance(data, dict)
            else False
        )
        if self.served is not None:
            ok, why = False, "another client is already served"
        else:
            why = f"the first message must be initialize with initializationOptions.{TOKEN_OPTION}"
        if not ok:
            log.warning("refused a TCP client: %s", why)
            msg_id = data.get("id") if isinstance(data, dict) and is_id(data.get("id")) else None
            answer = Answer(msg_id, INVALID_REQUEST, f"unauthenticated: {why}").response()
            body = json.dumps(answer).encode()
            writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return None
        self.served = writer
        return Frame(json.dumps(data).encode())


def serve_tcp(server: Any, host: str, port: int, token: str, ready: Callable[[int], None] | None = None) -> None:
    """Listen on host:port (loopback unless told otherwise) for one client holding `token`."""
    server._stop_event = threading.Event()
    gate = TcpGate(server, token)

    async def main() -> None:
        listener = await asyncio.start_server(gate.connection, host, port)
        server._server = listener
        if ready is not None:
            ready(listener.sockets[0].getsockname()[1])
        async with listener:
            try:
                await listener.serve_forever()
            except asyncio.CancelledError:
                pass

    try:
        asyncio.run(main())
    except (KeyboardInterrupt, SystemExit):
        pass
