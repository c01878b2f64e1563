"""Server-sent events: `event:` (optional) and one `data:` line of compact JSON per event."""

from __future__ import annotations

from typing import Any

from .errors import compact_json

DONE = b"data: [DONE]\n\n"  # how OpenAI and Mistral streams end
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy may hold blocks back


def event(data: Any, name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + compact_json(data) + b"\n\n"
