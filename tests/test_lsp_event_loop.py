"""Syntax work on a big or pathological document runs off the event loop (issue 16): a code action
or a hover on a line of 50,000 unclosed brackets used to hold up every other request (stats sent
just after it waited ~4 s). Asserted by order, not time: a stats request written in the same write
right after it is answered first, and the code action or hover still gets its right answer."""

from __future__ import annotations

import sys

import pytest
from raw_lsp import REPO, ServerProcess, frame

from sdls.syntax import SyntaxDocument, find_holes

URI = "file:///loop/brackets.py"
BRACKETS = "x = " + "(" * 50_000 + "\n"


@pytest.fixture(scope="module")
def served():
    server = ServerProcess([sys.executable, str(REPO / "tests" / "scripted_sdls_serve.py")])
    client = server.client
    client.initialize({"hover": {"doubt": False}, "actions": {"validate": False}, "diagnostics": {"enabled": True}})
    item = {"uri": URI, "languageId": "python", "version": 1, "text": BRACKETS}
    client.notify("textDocument/didOpen", {"textDocument": item})
    client.barrier()
    yield server
    server.close()


def request(msg_id: int, method: str, params: dict) -> bytes:
    return frame({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})


def answered_in_order(client, ids: list[int]) -> list[int]:
    for msg_id in ids:
        client.wait_for(msg_id)
    return [i for i in client.answers if i in ids]


def test_a_code_action_on_50000_brackets_does_not_hold_up_stats(served):
    client = served.client
    rng = {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 4}}
    action = {"textDocument": {"uri": URI}, "range": rng, "context": {"diagnostics": []}}
    client.send_bytes(request(501, "textDocument/codeAction", action) + request(502, "sdls/stats", {}))
    assert answered_in_order(client, [501, 502]) == [502, 501]
    titles = [a["title"] for a in client.wait_for(501)["result"]]
    assert titles == ["Fix this error: `(` is never closed"]  # the right answer, no stub to fill
    assert served.alive()


def test_a_hover_on_50000_brackets_does_not_hold_up_stats(served):
    client = served.client
    hover = {"textDocument": {"uri": URI}, "position": {"line": 0, "character": 5}}
    client.send_bytes(request(601, "textDocument/hover", hover) + request(602, "sdls/stats", {}))
    assert answered_in_order(client, [601, 602]) == [602, 601]
    answer = client.wait_for(601)
    assert "error" not in answer and "never closed" in answer["result"]["contents"]["value"]


def test_a_stub_beside_50000_brackets_is_still_found():
    doc = SyntaxDocument("def f():\n    pass\n\n" + BRACKETS, "python")
    assert [h.kind for h in find_holes(doc)] == ["pass"]
