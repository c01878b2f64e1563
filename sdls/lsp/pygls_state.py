"""What pygls 2.1.1 keeps per message or per document and never lets go of, and what lets go here.

- `_request_futures`: every notification's handler future is stored under a fresh uuid
  (json_rpc.py `_handle_notification` -> `_execute_handler`) and only a request's response pops it:
  one Future (with its Condition) per keystroke, ~0.5 KB each, kept for the life of the server.
  Here an entry goes once its future is done (a request's response still pops it first).
- an outgoing request the client never answers (workspace/configuration past its timeout) keeps
  its future and `_result_types` entry forever (upstream openlawlibrary/pygls#608): dropped here
  once the future is done or cancelled.
- the workspace's copy of every open document: pygls applies each change to its own TextDocument
  too, which sdls never reads (documents.py keeps the server's copy): a second copy of every
  buffer and a second pass over each change; here didOpen/didChange/didClose go straight to the
  handlers.
Related upstream: openlawlibrary/pygls#611 (a uuid per notification), #607 (progress tokens kept).
"""

from __future__ import annotations

import uuid
from typing import Any

from lsprotocol import types as lsp
from pygls.protocol.language_server import lsp_method


class ForgetFinished:
    """Protocol mixin: no handler or request future outlives its message."""

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):
        super()._execute_handler(msg_id, handler, callback, args, kwargs)  # type: ignore[misc]
        self._forget_when_done(msg_id)

    def send_request(self, method: str, params: Any | None = None, callback=None, msg_id=None):
        msg_id = str(uuid.uuid4()) if msg_id is None else msg_id  # as pygls would: known here
        future = super().send_request(method, params, callback, msg_id)  # type: ignore[misc]
        self._forget_when_done(msg_id, result_type=True)
        return future

    def _forget_when_done(self, msg_id, result_type: bool = False) -> None:
        futures = self._request_futures  # type: ignore[attr-defined]
        future = futures.get(msg_id)
        if future is None:
            return

        def forget(done) -> None:
            if futures.get(msg_id) is done:
                del futures[msg_id]
            if result_type and done.cancelled():
                self._result_types.pop(msg_id, None)  # type: ignore[attr-defined]

        future.add_done_callback(forget)


class OwnDocuments:
    """Protocol mixin: document sync goes to sdls's handlers only (pygls' workspace keeps no copy)."""

    def _user_handler(self, method: str, params: Any):
        handler = self.fm.features.get(method)  # type: ignore[attr-defined]
        if handler is not None:
            yield handler, (params,), None

    @lsp_method(lsp.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: lsp.DidOpenTextDocumentParams):
        yield from self._user_handler(lsp.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: lsp.DidChangeTextDocumentParams):
        yield from self._user_handler(lsp.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: lsp.DidCloseTextDocumentParams):
        yield from self._user_handler(lsp.TEXT_DOCUMENT_DID_CLOSE, params)
