"""A scripted LSP server for testing the editor clients' own behaviour (ghost text, accept word/line,
Tab fallback, cancellation) with answers known in advance. The real `sdls serve` is tested end to end
in tests/test_editor_nvim.py as well; this one only stands in where exact text must be asserted.

Answers: when the text before the cursor ends with "ret", the item replaces that "ret" with
"return a + b" (a replacement range, as the real server sends) and carries a command the client runs
after inserting it; otherwise it inserts SUGGESTION at the cursor. The file named by SCRIPTED_DELAY_FILE (read on every request) holds a delay in ms for the
answers; SCRIPTED_LOG names a file that gets one line per request, answer and cancellation.

Next edits (sdls/nextEdit, advertised as the real server does): once the document holds "size", the
first "width" after line 0 is proposed to become "size" (the delay file applies too); once it holds
"surface", the first "area" on line 0 (a `from` import) of another open document becomes "surface" there (a cross-file
edit, at that document's version); shown, accept and reject are logged.

Code actions: on a line holding `pass`, "Fill in stub" (refactor.rewrite), whose edit, computed only
on codeAction/resolve like the real server's, replaces `pass` with `return a + b`.
"""

from __future__ import annotations

import asyncio
import os

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from sdls.lsp.next_edit_handlers import NextEditProtocol

SUGGESTION = "total = a + b\nreturn total"
server = LanguageServer("sdls-scripted", "0", protocol_cls=NextEditProtocol)
_next_ids = iter(range(1, 10**6))


def delay_s() -> float:
    path = os.environ.get("SCRIPTED_DELAY_FILE")
    try:
        return int(open(path, encoding="utf-8").read().strip() or 0) / 1000 if path else 0.0
    except FileNotFoundError:
        return 0.0


def log(line: str) -> None:
    path = os.environ.get("SCRIPTED_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@server.feature(lsp.TEXT_DOCUMENT_INLINE_COMPLETION, lsp.InlineCompletionOptions())
async def inline_completion(ls: LanguageServer, params: lsp.InlineCompletionParams):
    log(f"request {params.position.line}:{params.position.character}")
    try:
        await asyncio.sleep(delay_s())
    except asyncio.CancelledError:
        log("cancelled")
        raise
    doc = ls.workspace.get_text_document(params.text_document.uri)
    line = doc.lines[params.position.line] if params.position.line < len(doc.lines) else ""
    before = line[: params.position.character]
    if before.endswith("ret"):
        start = lsp.Position(params.position.line, params.position.character - 3)
        item = lsp.InlineCompletionItem(
            "return a + b",
            range=lsp.Range(start, params.position),
            command=lsp.Command("accepted", "scripted.accepted", arguments=["return a + b"]),
        )
    else:
        item = lsp.InlineCompletionItem(SUGGESTION)
    log(f"answer {item.insert_text!r}")
    return lsp.InlineCompletionList(items=[item])


@server.command("scripted.accepted")
def accepted(ls: LanguageServer, *args):
    log(f"command accepted {args[0] if args else ''}")


@server.feature(
    lsp.TEXT_DOCUMENT_CODE_ACTION,
    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.RefactorRewrite], resolve_provider=True),
)
def code_action(ls: LanguageServer, params: lsp.CodeActionParams):
    doc = ls.workspace.get_text_document(params.text_document.uri)
    line = params.range.start.line
    if line >= len(doc.lines) or "pass" not in doc.lines[line]:
        return []
    log(f"code action {line}")
    return [
        lsp.CodeAction(
            title="Fill in stub", kind=lsp.CodeActionKind.RefactorRewrite, data={"uri": doc.uri, "line": line}
        )
    ]


@server.feature(lsp.CODE_ACTION_RESOLVE)
def resolve_code_action(ls: LanguageServer, action: lsp.CodeAction):
    uri, line = action.data["uri"], action.data["line"]
    text = ls.workspace.get_text_document(uri).lines[line]
    start = text.index("pass")
    edit = lsp.TextEdit(lsp.Range(lsp.Position(line, start), lsp.Position(line, start + 4)), "return a + b")
    action.edit = lsp.WorkspaceEdit(changes={uri: [edit]})
    log(f"resolved {line}")
    return action


def _plain(value):
    return {k: _plain(v) for k, v in value._asdict().items()} if hasattr(value, "_asdict") else value


def _elsewhere(ls: LanguageServer, uri: str) -> dict | None:
    """Once `uri` holds "surface": the "area" of another open document's `from` import, as a cross-file edit."""
    if "surface" not in ls.workspace.get_text_document(uri).source:
        return None
    for other in reversed(list(ls.workspace.text_documents.values())):  # the newest importer first
        first = other.source.split("\n")[0]
        col = first.find("area") if other.uri != uri and first.startswith("from ") else -1
        if col >= 0:
            sid = f"nes-{next(_next_ids)}"
            rng = {"start": {"line": 0, "character": col}, "end": {"line": 0, "character": col + 4}}
            command = {"title": "Accept next edit", "command": "sdls.acceptNextEdit", "arguments": [sid]}
            log(f"nextEdit answer {sid} {other.uri}")
            edit = {"text": "surface", "range": rng, "textDocument": {"uri": other.uri, "version": other.version}}
            return {"edits": [{**edit, "command": command, "id": sid, "source": "rule"}]}
    return {"edits": [], "reason": "no other file uses area"}


@server.feature("sdls/nextEdit")
async def next_edit(ls: LanguageServer, params):
    p = _plain(params)
    uri, version = p["textDocument"]["uri"], p["textDocument"].get("version")
    log(f"nextEdit request {version}")
    elsewhere = _elsewhere(ls, uri)  # bound to the versions at request time, as the real server's are
    await asyncio.sleep(delay_s())
    doc = ls.workspace.get_text_document(uri)
    if elsewhere is not None:
        return elsewhere
    if "size" not in doc.source:
        return {"edits": [], "reason": "nothing renamed"}
    for row, line in enumerate(doc.lines):
        col = line.find("width")
        if row > 0 and col >= 0:
            sid = f"nes-{next(_next_ids)}"
            rng = {"start": {"line": row, "character": col}, "end": {"line": row, "character": col + 5}}
            command = {"title": "Accept next edit", "command": "sdls.acceptNextEdit", "arguments": [sid]}
            log(f"nextEdit answer {sid} {row}:{col}")
            edit = {"text": "size", "range": rng, "textDocument": {"uri": uri, "version": version}}
            return {"edits": [{**edit, "command": command, "id": sid, "source": "rule"}]}
    return {"edits": [], "reason": "no width left"}


@server.feature("sdls/didShowNextEdit")
def did_show_next_edit(ls: LanguageServer, params):
    log(f"shown {_plain(params).get('id')}")


@server.command("sdls.acceptNextEdit")
def accept_next_edit(ls: LanguageServer, *args):
    log(f"command accept {args[0] if args else ''}")
    return {"accepted": True}


@server.command("sdls.rejectNextEdit")
def reject_next_edit(ls: LanguageServer, *args):
    log(f"command reject {args[0] if args else ''}")
    return {"rejected": True}


if __name__ == "__main__":
    server.start_io()
