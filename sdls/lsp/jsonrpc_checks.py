"""One framed body -> a JSON-RPC message to dispatch, or the error to answer it with.

pygls 2.1.1 parses a body with `json.loads(..., object_hook=structure_message)` inside a try that only
logs: invalid UTF-8, truncated JSON, a batch array, a missing method, a string `params` or params that
do not fit the method's type (a hover at line -1, `params: null`) get no response at all, so the
editor waits forever. Here every such case gets its JSON-RPC error whenever an id can be read, even
from a body that does not parse (`read_id`): -32700 parse error, -32600 invalid request. Params that
do not fit (-32602) are checked where pygls structures them (see rpc_protocol.py).

Stricter than `json.loads`: NaN/Infinity are not JSON, and nesting deeper than MAX_DEPTH is refused
before parsing (Python's parser would raise RecursionError, pygls' structuring recurse further).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
MAX_DEPTH = 64  # LSP's own messages nest about 10 deep (initialize capabilities)
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')
_BRACKETS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]]')


@dataclass(frozen=True)
class Answer:
    """The error response a body gets instead of being dispatched."""

    id: str | int | None
    code: int
    message: str

    def response(self) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.id, "error": {"code": self.code, "message": self.message}}


def is_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def read_id(body: bytes) -> str | int | None:
    """The top-level "id" of a JSON object that may be truncated, invalid or nested too deeply
    (None when there is none to read): what a parse error is answered to."""
    depth, key, expect_value = 0, None, False
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token in (b"{", b"["):
            if depth == 0 and token != b"{":
                return None
            depth += 1
            expect_value = expect_value and depth == 1
        elif token in (b"}", b"]"):
            depth -= 1
            if depth <= 0:
                return None
        elif depth == 1 and token == b":":
            expect_value = key == "id"
        elif depth == 1 and token == b",":
            key, expect_value = None, False
        elif depth == 1 and expect_value:
            try:
                value = json.loads(token)
            except ValueError:
                return None
            return value if is_id(value) else None
        elif depth == 1 and key is None and token.startswith(b'"'):
            try:
                key = json.loads(token)
            except ValueError:
                key = "?"
    return None


def nesting_depth(body: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest (counting stops just past `limit`)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(body):
        token = match.group()
        if token in (b"{", b"["):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif token in (b"}", b"]"):
            depth -= 1
    return deepest


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(body: bytes) -> tuple[dict[str, Any] | None, list[Answer]]:
    """The message in `body`, or the errors to answer (a batch gets one per request in it)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Answer(read_id(body), PARSE_ERROR, f"parse error: invalid UTF-8 at byte {exc.start}")]
    if nesting_depth(body) > MAX_DEPTH:
        return None, [Answer(read_id(body), INVALID_REQUEST, f"invalid request: nested deeper than {MAX_DEPTH} levels")]
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        return None, [Answer(read_id(body), PARSE_ERROR, f"parse error: {exc}")]
    if isinstance(data, list):
        ids = [m["id"] for m in data if isinstance(m, dict) and is_id(m.get("id"))]
        message = "invalid request: batches are not part of LSP; send each message in its own frame"
        return None, [Answer(i, INVALID_REQUEST, message) for i in ids] or [Answer(None, INVALID_REQUEST, message)]
    if not isinstance(data, dict):
        return None, [Answer(None, INVALID_REQUEST, "invalid request: a message is a JSON object")]
    problem = envelope_problem(data)
    if problem is not None:
        msg_id = data.get("id") if is_id(data.get("id")) else None
        return None, [Answer(msg_id, INVALID_REQUEST, f"invalid request: {problem}")]
    return data, []


def envelope_problem(data: dict[str, Any]) -> str | None:
    """What makes a JSON object no JSON-RPC 2.0 request, notification or response (None: nothing)."""
    if "id" in data and not is_id(data["id"]):
        return "id must be a string or an integer"
    if data.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if "method" in data:
        if not isinstance(data["method"], str):
            return "method must be a string"
        if data.get("params") is not None and not isinstance(data["params"], (dict, list)):
            return "params must be an object or an array"
        return None
    if "id" not in data:
        return "a message needs a method (or an id with a result or an error)"
    if ("result" in data) == ("error" in data):
        return "no method: a response needs exactly one of result and error"
    return None
