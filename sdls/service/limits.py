"""Bounds on what one request may cost: body size, JSON shape, requests in flight."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from .errors import ApiError

MAX_BODY_BYTES = 4 * 1024 * 1024  # llama.vim's biggest body (256 + 64 lines, 16 chunks of 64 lines) is ~200 KB


async def read_json_object(request: Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object; 413 past `max_bytes` (checked before reading where the length is
    announced, and while reading where it is not), 400 for anything that is not a JSON object."""
    announced = request.headers.get("content-length")
    if announced is not None and (not announced.isdigit() or int(announced) > max_bytes):
        raise ApiError(413, f"request body of {announced} bytes; the limit is {max_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, f"request body over the {max_bytes}-byte limit")
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "the request body nests too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(data).__name__}")
    return data


@dataclass
class Admission:
    """At most `limit` model requests at once; past that a 503 tells the client to come back, rather
    than an unbounded queue growing in memory and in everyone's latency."""

    limit: int = 64
    active: int = 0

    def enter(self) -> None:
        if self.active >= self.limit:
            raise ApiError(503, f"the service is busy ({self.active} requests in flight); retry shortly")
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
