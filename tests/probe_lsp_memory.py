"""How `sdls serve`'s memory moves with typing and with opening and closing documents (issue 16):
the real server on stdio (scripted model, tests/scripted_sdls_serve.py), driven by a raw client;
RSS as `sdls/stats` reports it after each round. Run: python tests/probe_lsp_memory.py [rounds]."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from raw_lsp import ServerProcess

SCRIPTED = str(Path(__file__).resolve().parent / "scripted_sdls_serve.py")
TEXT = "def f(x):\n    return x\n" * 40
KEYSTROKES = 2000  # per round, in one document
DOCUMENTS = 500  # opened, changed and closed per round


def keystrokes(client, uri: str, first_version: int, n: int) -> int:
    line = TEXT.count("\n")
    for i in range(n):
        at = {"line": line, "character": i % 200}
        change = {"range": {"start": at, "end": at}, "text": "x" if i % 200 != 199 else "\n"}
        if change["text"] == "\n":
            line += 1
        client.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": first_version + i}, "contentChanges": [change]},
        )
        if i % 25 == 0:  # the editor asks for a completion now and then
            client.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": line, "character": (i % 200) + 1},
                    "context": {"triggerKind": 2},
                },
            )
    return first_version + n


def open_change_close(client, round_: int, n: int) -> None:
    for i in range(n):
        uri = f"file:///probe/r{round_}/d{i}.py"
        client.notify(
            "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": TEXT}}
        )
        client.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": TEXT + "y = 1\n"}]},
        )
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


def main(rounds: int = 6) -> None:
    server = ServerProcess([sys.executable, SCRIPTED])
    client = server.client
    client.initialize({"completion": {"debounceMs": 0}})
    uri = "file:///probe/typed.py"
    client.notify(
        "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": TEXT}}
    )
    version, notes = 2, 0
    print(
        f"round  notifications  rss_mb   (each round: {KEYSTROKES} keystrokes + {DOCUMENTS} documents opened/changed/closed)"
    )
    for r in range(rounds + 1):
        if r:
            version = keystrokes(client, uri, version, KEYSTROKES)
            open_change_close(client, r, DOCUMENTS)
            notes += KEYSTROKES + 3 * DOCUMENTS
        stats = client.barrier()["result"]
        print(f"{r:5d}  {notes:13d}  {stats['rss_mb']:6.1f}   next-edit documents {stats['next_edit']['documents']}")
    server.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
