"""Next-edit suggestions over LSP: Copilot's protocol as Neovim clients speak it, and sdls's own.

- `textDocument/copilotInlineEdit` and `sdls/nextEdit`, one shape: params {textDocument: {uri,
  version}, position, context?}; result {edits: [{text, range, textDocument: {uri, version}, command,
  id, source, rule}], reason?}. Never null: nothing to suggest is `{"edits": []}` with the reason
  (a stale version, no edit to follow, the model unavailable: copilot-lsp shows every error it gets).
  sdls/nextEdit may answer an edit of another open document (its textDocument says which, at its
  version: the uses of a renamed name in the files that import it); copilotInlineEdit never does.
  The accept command rides in `command` (its arguments[0] is the suggestion id, as Copilot's does).
- `textDocument/didShowInlineEdit {item: {command}}` and `sdls/didShowNextEdit {id}`: shown.
- `sdls.acceptNextEdit [id]` / `sdls.rejectNextEdit [id]` (workspace/executeCommand, listed in
  executeCommandProvider, which Neovim requires before it sends them): the editor applied or
  dismissed it. Accepting only records it: the editor applies the edit itself; the server never writes.
- Advertised under `experimental.sdls.nextEdit` in the initialize result; clients that never ask
  never see any of it.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types as lsp
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from . import convert
from .convert import BadPayload, from_json
from .handlers import command, feature, request
from .language_server import SdlsServer
from .next_edit_state import Suggestion

log = logging.getLogger(__name__)
COPILOT_INLINE_EDIT = "textDocument/copilotInlineEdit"
COPILOT_DID_SHOW = "textDocument/didShowInlineEdit"
NEXT_EDIT = "sdls/nextEdit"
DID_SHOW = "sdls/didShowNextEdit"
ACCEPT = "sdls.acceptNextEdit"
REJECT = "sdls.rejectNextEdit"
EXPERIMENTAL = {
    "sdls": {
        "nextEdit": {
            "requests": [NEXT_EDIT, COPILOT_INLINE_EDIT],
            "notifications": [DID_SHOW, COPILOT_DID_SHOW],
            "commands": {"accept": ACCEPT, "reject": REJECT},
        }
    }
}


class AdvertiseNextEdits:
    """Protocol mixin: the initialize result carries EXPERIMENTAL (pygls builds no experimental capabilities)."""

    @lsp_method(lsp.INITIALIZE)
    def lsp_initialize(self, params: lsp.InitializeParams):
        result = yield from super().lsp_initialize(params)  # type: ignore[misc]
        result.capabilities.experimental = {**(result.capabilities.experimental or {}), **EXPERIMENTAL}
        return result


class NextEditProtocol(AdvertiseNextEdits, LanguageServerProtocol):
    pass


def plain(value: Any) -> Any:
    """Custom-method params as plain JSON data (pygls hands them over as namedtuples)."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _params(raw: Any) -> tuple[str, int | None, lsp.Position]:
    data = plain(raw)
    if not isinstance(data, dict):
        raise BadPayload(f"next edit params must be an object, got {type(data).__name__}")
    ident = from_json(data.get("textDocument"), lsp.OptionalVersionedTextDocumentIdentifier, "textDocument")
    position = from_json(data.get("position"), lsp.Position, "position")
    return ident.uri, ident.version, position


def _result(doc, suggestion: Suggestion | None, reason: str) -> dict:
    """The answer; `doc` is the document the suggestion edits (the asked one, or another for a cross-file edit)."""
    if suggestion is None:
        return {"edits": [], "reason": reason}
    e = suggestion.edit
    accept = lsp.Command(title="Accept next edit", command=ACCEPT, arguments=[suggestion.id])
    edit = {
        "text": e.text,
        "range": convert.to_json(convert.lsp_range(doc, e.start, e.end)),
        "textDocument": {"uri": doc.uri, "version": suggestion.version},
        "command": convert.to_json(accept),
        "id": suggestion.id,
        "source": e.source,
        "rule": e.rule,
    }
    return {"edits": [edit]}


async def _next_edit(ls: SdlsServer, raw: Any, other_files: bool) -> dict:
    uri, version, position = _params(raw)
    doc = ls.docs.get(uri)
    if version is not None and version != doc.version:
        return {"edits": [], "reason": f"the request is for version {version}, the document is at {doc.version}"}
    doc.offset(position.line, position.character)  # a position outside the text: InvalidParams
    suggestion, reason = await ls.next_edits.request(doc, version)
    if ls.next_edits.model_error:
        ls.announce(f"sdls: next edits run on rules alone, the model is unavailable: {ls.next_edits.model_error}")
    if suggestion is None:
        return _result(doc, None, reason)
    current, target = ls.docs.find(uri), ls.docs.find(suggestion.uri)
    if current is not doc or current.version != suggestion.origin_version or target is None:
        return {"edits": [], "reason": "the document changed while the suggestion was computed"}
    if target.version != suggestion.version:
        return {"edits": [], "reason": f"{suggestion.uri} changed while the suggestion was computed"}
    if target is not doc and not other_files:
        return {"edits": [], "reason": f"the next edit is in another file ({suggestion.uri}): sdls/nextEdit serves it"}
    return _result(target, suggestion, reason)


@feature(COPILOT_INLINE_EDIT)
@request
async def copilot_inline_edit(ls: SdlsServer, params: Any = None) -> dict:
    # Only edits of the asked document: Copilot's clients show an answer in the buffer they asked from.
    return await _next_edit(ls, params, other_files=False)


@feature(NEXT_EDIT)
@request
async def next_edit(ls: SdlsServer, params: Any = None) -> dict:
    return await _next_edit(ls, params, other_files=True)


def _suggestion_id(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 200 else None


@feature(COPILOT_DID_SHOW)
def did_show_inline_edit(ls: SdlsServer, params: Any = None) -> None:
    """copilot-lsp sends {item: {command}}; others the whole edit as item: read arguments[0] defensively."""
    data = plain(params)
    item = data.get("item") if isinstance(data, dict) else None
    command_ = item.get("command") if isinstance(item, dict) else None
    args = command_.get("arguments") if isinstance(command_, dict) else None
    sid = _suggestion_id(args[0]) if isinstance(args, list) and args else None
    if sid is None or not ls.next_edits.shown(sid):
        log.info("didShowInlineEdit for no suggestion sdls knows: %.200r", params)


@feature(DID_SHOW)
def did_show_next_edit(ls: SdlsServer, params: Any = None) -> None:
    data = plain(params)
    sid = _suggestion_id(data.get("id")) if isinstance(data, dict) else None
    if sid is None or not ls.next_edits.shown(sid):
        log.info("sdls/didShowNextEdit for no suggestion sdls knows: %.200r", params)


def _command_id(name: str, args: tuple) -> str:
    sid = _suggestion_id(args[0]) if len(args) == 1 else None
    if sid is None:
        raise BadPayload(f"{name} needs [suggestion id], got {list(args)!r:.200}")
    return sid


@command(ACCEPT)
@request
async def accept_next_edit(ls: SdlsServer, *args) -> dict:
    sid = _command_id(ACCEPT, args)
    return {"accepted": ls.next_edits.accepted(sid), "id": sid}


@command(REJECT)
@request
async def reject_next_edit(ls: SdlsServer, *args) -> dict:
    sid = _command_id(REJECT, args)
    return {"rejected": ls.next_edits.rejected_by_user(sid), "id": sid}
