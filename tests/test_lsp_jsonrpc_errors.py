"""Malformed requests over the real `sdls serve` stdio, from a raw JSON-RPC client: each one that has
a readable id gets exactly one error response (-32700 parse error, -32600 invalid request, -32602
invalid params), and the server keeps serving. pygls alone answered none of these (see
sdls/lsp/rpc_protocol.py)."""

from __future__ import annotations

import json

import pytest
from raw_lsp import ServerProcess, frame, serve_argv

URI = "file:///jsonrpc/a.py"
TD = {"uri": URI}
POS = {"line": 0, "character": 1}
CTX = {"triggerKind": 1}
PARSE, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602


def _req(msg_id, method, params):
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


def _nested(msg_id: int, depth: int) -> bytes:
    head = b'{"jsonrpc": "2.0", "method": "sdls/nextEdit", "params": '
    return head + b'{"a": ' * depth + b"{}" + b"}" * depth + b', "id": %d}' % msg_id  # the id after the params


# (name, bytes sent, {id: expected error code})
CASES = [
    ("hover at line -1", _req(1, "textDocument/hover", {"textDocument": TD, "position": {"line": -1, "character": 0}})),
    ("hover params null", _req(2, "textDocument/hover", None)),
    ("hover without textDocument", _req(3, "textDocument/hover", {"position": POS})),
    (
        "hover at a float line",
        _req(4, "textDocument/hover", {"textDocument": TD, "position": {"line": 0.5, "character": 0}}),
    ),
    (
        "hover at a string line",
        _req(5, "textDocument/hover", {"textDocument": TD, "position": {"line": "0", "character": 0}}),
    ),
    ("inline without context", _req(6, "textDocument/inlineCompletion", {"textDocument": TD, "position": POS})),
    (
        "inline with triggerKind 99",
        _req(7, "textDocument/inlineCompletion", {"textDocument": TD, "position": POS, "context": {"triggerKind": 99}}),
    ),
    (
        "codeAction range as a list",
        _req(8, "textDocument/codeAction", {"textDocument": TD, "range": [0, 1], "context": {"diagnostics": []}}),
    ),
    ("missing method", {"jsonrpc": "2.0", "id": 10, "params": {}}),
    ("params a string", _req(11, "textDocument/hover", "x")),
    ("jsonrpc 1.0", {"jsonrpc": "1.0", "id": 12, "method": "sdls/stats"}),
    ("unknown method", _req(13, "sdls/noSuchMethod", {})),
    ("hover with a null uri", _req(14, "textDocument/hover", {"textDocument": {"uri": None}, "position": POS})),
]
EXPECTED = {
    1: INVALID_PARAMS,
    2: INVALID_PARAMS,
    3: INVALID_PARAMS,
    4: INVALID_PARAMS,
    5: INVALID_PARAMS,
    6: INVALID_PARAMS,
    7: INVALID_PARAMS,
    8: INVALID_PARAMS,
    10: INVALID_REQUEST,
    11: INVALID_REQUEST,
    12: INVALID_REQUEST,
    13: METHOD_NOT_FOUND,
    14: INVALID_PARAMS,
}
RAW_CASES = [
    # bodies that are no JSON: answered with the id read from what there is
    ("truncated JSON", b'{"jsonrpc": "2.0", "id": 20, "method": "textDocument/hover", "params": {"textDocu', 20, PARSE),
    ("invalid UTF-8", b'{"jsonrpc": "2.0", "id": 21, "method": "sdls/stats", "params": {"x": "\xff\xfe"}}', 21, PARSE),
    ("NaN", b'{"jsonrpc": "2.0", "id": 22, "method": "sdls/stats", "params": {"x": NaN}}', 22, PARSE),
    ("deeply nested params", _nested(9, 5000), 9, INVALID_REQUEST),
    (
        "a batch",
        json.dumps([_req(23, "sdls/stats", {}), _req(24, "sdls/stats", {})]).encode(),
        23,
        INVALID_REQUEST,
    ),
]


@pytest.fixture(scope="module")
def server():
    proc = ServerProcess(serve_argv())
    proc.client.initialize({"hover": {"enabled": False}, "worker": {"spawn": False}})
    text = "def f(x):\n    return x\n"
    proc.client.notify(
        "textDocument/didOpen", {"textDocument": {**TD, "languageId": "python", "version": 1, "text": text}}
    )
    yield proc
    proc.close()


@pytest.mark.parametrize("name, message", CASES, ids=[c[0] for c in CASES])
def test_a_malformed_request_gets_its_error(server, name, message):
    server.client.send(message)
    answer = server.client.wait_for(message["id"])
    assert answer["error"]["code"] == EXPECTED[message["id"]], answer
    assert "traceback" not in json.dumps(answer)
    assert server.client.barrier()["result"]["counters"] is not None  # still serving


@pytest.mark.parametrize("name, body, msg_id, code", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_a_body_that_is_no_message_gets_its_error(server, name, body, msg_id, code):
    server.client.send_bytes(frame(body))
    answer = server.client.wait_for(msg_id)
    assert answer["error"]["code"] == code, answer
    assert server.client.barrier()["result"]["counters"] is not None


def test_every_request_got_exactly_one_answer(server):
    """After all the cases above (and a barrier), no id was answered twice."""
    client = server.client
    client.barrier()
    assert {i: n for i, n in client.answer_counts().items() if n != 1} == {}
    assert client.answers[24][0]["error"]["code"] == INVALID_REQUEST  # the batch's second request too


def test_a_request_after_shutdown_is_refused_not_dropped():
    proc = ServerProcess(serve_argv())
    try:
        proc.client.initialize({"worker": {"spawn": False}})
        assert proc.client.call("shutdown")["result"] is None
        answer = proc.client.call("sdls/stats")
        assert answer["error"]["code"] == INVALID_REQUEST and "shutting down" in answer["error"]["message"]
    finally:
        proc.close()


class _Captured:
    def __init__(self):
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        pass


def test_an_internal_error_keeps_its_traceback_in_the_log(caplog):
    """A handler bug answers -32603 with the exception's one line; the traceback goes to the log only."""
    from sdls.lsp.framing import Frame, FrameDecoder
    from sdls.lsp.language_server import create_server

    server = create_server()

    @server.feature("test/boom")
    def boom(ls, params):
        raise KeyError("a bug in a handler")

    out = _Captured()
    server.protocol.set_writer(out)
    with caplog.at_level("ERROR"):
        server.protocol.handle_frame(Frame(json.dumps(_req(1, "test/boom", {})).encode()))
    (answer,) = [json.loads(f.body) for f in FrameDecoder().feed(out.data)]
    assert answer["id"] == 1 and answer["error"]["code"] == -32603
    assert "a bug in a handler" in answer["error"]["message"] and "data" not in answer["error"]
    assert "Traceback" in caplog.text and "boom" in caplog.text
