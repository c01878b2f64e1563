"""The worker's wire format: msgpack maps in length-prefixed frames, with a version handshake.

Frame: 4-byte big-endian payload length, then one msgpack map with a "type" key. A frame longer
than `MAX_FRAME_BYTES`, a payload that is not a msgpack map, or a first message that is not a
matching "hello" is a protocol error: the worker drops that one connection and keeps serving others.
The limit is the largest legitimate job's: a job carries at most one document's text, the server
handles documents of up to MAX_DOCUMENT_CHARS in full (its max_document_chars default), and a
character is at most 4 bytes of UTF-8. A longer announced length is refused from the 4-byte header,
before anything of it is read or allocated.

Messages (client -> worker):
  hello   {version, client}                       first message; answered with hello {version, pid, model}
  submit  {id, lane: "inline"|"rewrite", job}     answered with result {id, result} or error {id, message}
  cancel  {id}                                    the job stops within one denoising step
  doubt   {id, text, start, end}                  answered with result {id, result: {spans}}
  describe {id}                                   answered with result {id, result: engine.describe()}
  stats   {id}                                    answered with result {id, result: lanes, queues, memory}
Messages (worker -> client): hello, result, error; error without id = the connection is being closed.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgpack

PROTOCOL_VERSION = 1
MAX_DOCUMENT_CHARS = 2_000_000
MAX_FRAME_BYTES = 4 * MAX_DOCUMENT_CHARS + 64 * 1024  # the text, and room for the job's other fields
_HEADER = struct.Struct(">I")
LANES = ("inline", "rewrite")
MAX_IN_FLIGHT = 64  # jobs (submit, doubt) a worker holds per connection; a client keeps to it


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame or message."""


def encode_frame(message: dict[str, Any], max_bytes: int = MAX_FRAME_BYTES) -> bytes:
    payload = msgpack.packb(message, use_bin_type=True)
    if len(payload) > max_bytes:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds the {max_bytes}-byte frame limit")
    return _HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"payload is not msgpack: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError(f"message must be a map with a 'type' string, got {type(message).__name__}")
    return message


async def read_frame(reader: asyncio.StreamReader, max_bytes: int = MAX_FRAME_BYTES) -> dict[str, Any] | None:
    """The next message, or None at a clean end of stream (EOF between frames)."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("stream ended inside a frame header") from exc
        return None
    (length,) = _HEADER.unpack(header)
    if length > max_bytes:
        raise ProtocolError(f"frame of {length} bytes exceeds the {max_bytes}-byte limit")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(f"stream ended inside a {length}-byte frame") from exc
    return decode_payload(payload)


def hello(**extra: Any) -> dict[str, Any]:
    return {"type": "hello", "version": PROTOCOL_VERSION, **extra}


def check_hello(message: dict[str, Any]) -> None:
    if message.get("type") != "hello":
        raise ProtocolError(f"expected a hello message first, got {message.get('type')!r}")
    if message.get("version") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {message.get('version')!r} is not supported "
            f"(this side speaks version {PROTOCOL_VERSION})"
        )
