"""The server's JSON-RPC protocol: every request that can be identified gets exactly one response.

What pygls 2.1.1 (pygls/protocol/json_rpc.py) leaves unanswered or leaks, and what answers it here:
- params that do not fit the method (a hover at line -1, `params: null`, a missing textDocument, an
  inlineCompletion without context or with triggerKind 99, a codeAction range given as a list):
  pygls raises while structuring, before it knows the id, and only logs -> -32602 invalid params
  with cattrs' own account of the field;
- a float, bool or string where LSP has an integer (1.5 silently became line 1), a number or null
  where it has a string (`text: null` became the text "None") -> -32602 too (the strict converter);
- a request after `shutdown` was dropped -> -32600, as LSP asks;
- a request to a custom method without `params` (JSON-RPC allows it) failed to structure -> served;
- an internal error carried the Python traceback in `error.data` -> the traceback goes to the log
  (stderr) only.
Bodies that are no JSON-RPC message at all are answered in jsonrpc_checks.py, bad framing in
framing.py. Upstream: openlawlibrary/pygls#326 (a message whose types do not fit gets only a logged
"Unable to deserialize message") and #277 (no central handling of unexpected errors).
"""

from __future__ import annotations

import logging
from typing import Any

import cattrs
from lsprotocol.types import EXIT, ResponseError
from pygls.protocol import default_converter
from pygls.protocol.json_rpc import RPCRequest

from .framing import Frame, Refused
from .jsonrpc_checks import INVALID_PARAMS, INVALID_REQUEST, Answer, is_id, parse, read_id

log = logging.getLogger(__name__)


def strict_converter() -> cattrs.Converter:
    """pygls' converter, refusing values that would only fit after a lossy conversion."""
    converter = default_converter()

    def exact(kind: type, name: str):
        def structure(value: Any, cls: Any) -> Any:
            if type(value) is not kind:
                raise TypeError(f"expected {name}, got {type(value).__name__}")
            return value if cls is kind else cls(value)  # an enum of ints or strings: one of its values

        return structure

    converter.register_structure_hook(int, exact(int, "an integer"))
    converter.register_structure_hook(bool, exact(bool, "a boolean"))
    converter.register_structure_hook(str, exact(str, "a string"))
    return converter


def _why(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    if isinstance(cause, cattrs.BaseValidationError):
        details = cattrs.transform_error(cause, path="params")
        return "; ".join(d.replace("$.params.", "") for d in details)[:500]
    return str(cause)[:500] or type(cause).__name__


class AnswerEveryRequest:
    """Protocol mixin (put it before pygls' LanguageServerProtocol): the transport hands it framed
    bodies (`handle_frame`); it answers what cannot be dispatched and dispatches the rest."""

    def handle_frame(self, item: Frame | Refused) -> None:
        if isinstance(item, Refused):
            msg_id = read_id(item.body) if item.body.startswith(b"{") else None
            log.warning("bad framing: %s%s", item.reason, f" (request {msg_id!r} answered)" if msg_id else "")
            if msg_id is not None:
                self._answer(Answer(msg_id, INVALID_REQUEST, f"invalid request: bad framing: {item.reason}"))
            return
        data, answers = parse(item.body)
        for answer in answers:
            log.warning("refused a message: %s", answer.message)
            self._answer(answer)
        if data is None:
            return
        if "method" in data:
            data.setdefault("params", None)  # JSON-RPC lets a request omit params; pygls' generic types need them
        try:
            message = self.structure_message(data)  # type: ignore[attr-defined]
        except Exception as exc:
            method, msg_id = data.get("method"), data.get("id")
            if method is not None and is_id(msg_id):
                self._answer(Answer(msg_id, INVALID_PARAMS, f"invalid params for {method}: {_why(exc)}"))
            else:
                log.warning("dropped a notification or response that does not fit its type: %s", _why(exc))
            return
        self.handle_message(message)

    def _answer(self, answer: Answer) -> None:
        self._send_data(answer.response())  # type: ignore[attr-defined]

    def handle_message(self, message: Any) -> None:
        if getattr(self, "_shutdown", False) and isinstance(message, RPCRequest) and message.method != EXIT:
            self._answer(Answer(message.id, INVALID_REQUEST, "invalid request: the server is shutting down"))
            return
        super().handle_message(message)  # type: ignore[misc]

    def _send_response(self, msg_id: Any, result: Any = None, error: ResponseError | None = None) -> None:
        if error is not None and isinstance(error.data, dict) and "traceback" in error.data:
            error = ResponseError(code=error.code, message=error.message)  # the log has the traceback
        super()._send_response(msg_id, result, error)  # type: ignore[misc]
