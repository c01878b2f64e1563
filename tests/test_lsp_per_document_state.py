"""No per-document state outlives didClose and none grows with keystrokes (issue 16): the server in
this process, fed framed JSON-RPC through its real protocol (rpc_protocol.AnswerEveryRequest), so
pygls' own bookkeeping is under test too. Entries are counted, not bytes (tests/probe_lsp_memory.py
prints the RSS of a real `sdls serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import json

from core_server import use_backend
from lsp_fakes import ScriptedBackend
from lsprotocol import types as lsp

from sdls.lsp.framing import Frame
from sdls.lsp.language_server import ANNOUNCED, create_server
from sdls.lsp.next_edit_state import RECENT

TEXT = "def f(x):\n    return x\n" * 20
DOCUMENTS = 1500
KEYSTROKES = 3000
CONTENT_MODIFIED, SERVER_CANCELLED = -32801, -32802


class Wire:
    """A server and what it sends back (responses by id)."""

    def __init__(self):
        self.server = create_server()
        self.answers: dict = {}
        self.server.protocol.set_writer(self)
        self._ids = iter(range(1, 10**6))
        self.requests = 0
        self.answer_server = True

    def write(self, data: bytes) -> None:
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        if "id" in body and "method" not in body:
            self.answers[body["id"]] = body
        elif "id" in body and self.answer_server:  # e.g. window/workDoneProgress/create: accepted
            reply = Frame(json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": None}).encode())
            asyncio.get_running_loop().call_soon(self.server.protocol.handle_frame, reply)

    def send(self, method: str, params, request: bool = False):
        message = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            message["id"] = next(self._ids)
            self.requests += 1
        self.server.protocol.handle_frame(Frame(json.dumps(message).encode()))
        return message.get("id")

    def open(self, uri: str, version: int = 1) -> None:
        item = {"uri": uri, "languageId": "python", "version": version, "text": TEXT}
        self.send("textDocument/didOpen", {"textDocument": item})

    def change(self, uri: str, version: int, line: int, col: int, text: str) -> None:
        at = {"line": line, "character": col}
        change = {"range": {"start": at, "end": at}, "text": text}
        self.send(
            "textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]}
        )

    def close(self, uri: str) -> None:
        self.send("textDocument/didClose", {"textDocument": {"uri": uri}})


def per_document_state(server) -> dict:
    """Every structure the server keeps per document or per message, by its size."""
    nes, protocol = server.next_edits, server.protocol
    return {
        "documents": len(server.docs.all()),
        "pygls documents": len(server.workspace.text_documents),
        "diagnostic tasks": len(server.diagnostic_tasks),
        "newest-wins tasks": len(server.latest_tasks),
        "superseded tasks": len(server.superseded),
        "cache entries": len(server.cache._entries),
        "next-edit histories": len(nes.histories),
        "next-edit current": len(nes.current),
        "next-edit tasks": len(nes.tasks),
        "next-edit timers": len(nes.timers),
        "next-edit rejected": len(nes.rejected),
        "pygls futures": len(protocol._request_futures),
        "pygls result types": len(protocol._result_types),
        "progress tokens": len(protocol.progress.tokens),
    }


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_opening_typing_and_closing_leaves_nothing_behind():
    wire = Wire()
    server = wire.server
    wire.send("initialize", {"processId": None, "rootUri": None, "capabilities": {}}, request=True)
    wire.send("initialized", {})
    use_backend(server, ScriptedBackend(answer=lambda job: "x + 1"))

    for i in range(DOCUMENTS):  # open, change, ask, close: thousands of documents
        uri = f"file:///w/d{i}.py"
        wire.open(uri)
        wire.change(uri, 2, 1, 12, " + 1")
        if i % 10 == 0:
            params = {
                "textDocument": {"uri": uri},
                "position": {"line": 1, "character": 16},
                "context": {"triggerKind": 1},
            }
            wire.send("textDocument/inlineCompletion", params, request=True)
            await settle()
        if i % 7 == 0:
            wire.change(uri, 2, 0, 0, "#")  # a version that does not grow: out of sync, told once
        wire.close(uri)
        if i % 100 == 0:
            await settle()

    typed = "file:///w/typed.py"  # thousands of keystrokes in one document
    wire.open(typed)
    line, col = 40, 0
    for k in range(KEYSTROKES):
        wire.change(typed, k + 2, line, col, "x" if k % 50 != 49 else "\n")
        line, col = (line + 1, 0) if k % 50 == 49 else (line, col + 1)
        if k % 25 == 0:
            params = {
                "textDocument": {"uri": typed},
                "position": {"line": line, "character": col},
                "context": {"triggerKind": 1},
            }
            wire.send("textDocument/inlineCompletion", params, request=True)
        if k % 100 == 0:
            await settle()
    await settle()
    open_state = per_document_state(server)
    history = server.next_edits.histories.get(typed)
    assert history is None or len(history.events) <= server.settings.next_edit.history_events
    assert open_state["documents"] == 1 and open_state["pygls futures"] <= 2, open_state

    wire.close(typed)
    await settle()
    assert all(n == 0 for n in per_document_state(server).values()), per_document_state(server)
    assert len(server._announced) <= ANNOUNCED and len(server.next_edits.recent) <= RECENT
    assert len(server.latencies) <= 5000
    assert len(wire.answers) == wire.requests  # each request answered (typing on makes many stale)
    codes = {a["error"]["code"] for a in wire.answers.values() if "error" in a}
    assert codes <= {CONTENT_MODIFIED, SERVER_CANCELLED}, codes


async def test_a_request_the_client_never_answers_is_forgotten_once_given_up():
    wire = Wire()
    wire.answer_server = False
    server = wire.server
    wire.send(
        "initialize",
        {"processId": None, "rootUri": None, "capabilities": {"workspace": {"configuration": True}}},
        request=True,
    )
    for _ in range(20):  # each asks workspace/configuration, which this client never answers
        with_timeout = server.workspace_configuration_async(lsp.ConfigurationParams(items=[]))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(with_timeout, 0.001)  # sent, then given up on
    await settle()
    state = per_document_state(server)
    assert state["pygls futures"] == 0 and state["pygls result types"] == 0, state


async def test_progress_tokens_go_when_the_work_ends():
    wire = Wire()
    server = wire.server
    wire.send("initialize", {"processId": None, "capabilities": {"window": {"workDoneProgress": True}}}, request=True)
    for _ in range(20):  # a code action resolve or fill-stubs reports progress like this
        async with server.progress("a long job") as report:
            assert report is not None
    await settle()
    state = per_document_state(server)
    assert state["progress tokens"] == 0 and state["pygls futures"] == 0, state
