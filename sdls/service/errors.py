"""Error answers in the one shape llama.cpp and OpenAI clients both read, and compact JSON.

`{"error": {"code": 400, "message": "...", "type": "invalid_request_error"}}`. JSON is written
without spaces: llama.vim only accepts a body that matches `"content"\\s*:"`, i.e. no space after
the colon (llama.cpp's own encoder is compact too).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}


class ApiError(Exception):
    """A request the service refuses, with the HTTP status and a message for the user."""

    def __init__(self, status: int, message: str, kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind or ERROR_TYPES.get(status, "invalid_request_error")


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


class CompactJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return compact_json(content)


def error_body(status: int, message: str, kind: str | None = None) -> dict:
    return {"error": {"code": status, "message": message, "type": kind or ERROR_TYPES.get(status, "server_error")}}


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> CompactJSONResponse:
    return CompactJSONResponse(error_body(error.status, error.message, error.kind), error.status, headers=headers)
