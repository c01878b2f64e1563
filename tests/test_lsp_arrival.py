"""A request is served against the document as it was when the request arrived.

pygls starts an async handler only after the reader has handled the rest of what it read, so a
`didChange` written right after a request (one write, one read) used to be applied first: the
request was then served on the new text at a position meant for the old one, and the staleness check
compared the new version with itself (the flaky end-to-end test this replaces as a certainty)."""

from __future__ import annotations

import sys

from raw_lsp import REPO, ServerProcess, frame

URI = "file:///arrival/a.py"
CONTENT_MODIFIED = -32801


def _inline(msg_id: int, line: int, col: int) -> dict:
    params = {"textDocument": {"uri": URI}, "position": {"line": line, "character": col}, "context": {"triggerKind": 1}}
    return {"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/inlineCompletion", "params": params}


def _change(version: int) -> dict:
    at = {"line": 0, "character": 0}
    edit = {"range": {"start": at, "end": at}, "text": "# edited\n"}
    params = {"textDocument": {"uri": URI, "version": version}, "contentChanges": [edit]}
    return {"jsonrpc": "2.0", "method": "textDocument/didChange", "params": params}


def test_a_change_in_the_same_read_as_a_request_makes_the_request_stale():
    server = ServerProcess([sys.executable, str(REPO / "tests" / "scripted_sdls_serve.py")])
    try:
        client = server.client
        client.initialize({"completion": {"debounceMs": 0}, "hover": {"enabled": False}})
        open_params = {
            "textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": "def f(x):\n    y = \n"}
        }
        client.notify("textDocument/didOpen", open_params)
        assert "result" in client.wait_for(client.request("textDocument/inlineCompletion", _inline(0, 1, 8)["params"]))
        for attempt, version in enumerate(range(2, 12)):
            msg_id = 100 + attempt
            client.send_bytes(frame(_inline(msg_id, 1, 8)) + frame(_change(version)))  # one write
            answer = client.wait_for(msg_id)
            assert answer.get("error", {}).get("code") == CONTENT_MODIFIED, answer
            # The same request on the text as it now is: served (line 2 is the old line 1).
            assert "result" in client.wait_for(
                client.request("textDocument/inlineCompletion", _inline(0, 2 + attempt, 8)["params"])
            )
        assert client.duplicates() == {} and server.alive()
    finally:
        server.close()
