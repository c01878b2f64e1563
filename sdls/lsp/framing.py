"""LSP base-protocol framing: bytes in, message bodies out, whatever the bytes are.

pygls 2.1.1's reader (pygls/io_.py `run_async`) matches only `Content-Length: N\\r\\n` exactly, reads
whatever length it is told (`Content-Length: 100000000000000` raises MemoryError and kills the
server, 2147483648 waits for a 2 GB body) and, after garbage, waits for a stray line ending before
it reads anything again. This decoder is sans-IO (`feed(bytes) -> [Frame | Refused]`) so the
transport, the tests and the fuzzer drive the same code:

- header names are case-insensitive, the space after the colon is optional, lines may end in LF;
- Content-Length must be one non-negative decimal no larger than `max_body` (64 MB by default):
  a missing, negative, non-numeric or too large one is refused without reading (or allocating) the
  announced body, and the decoder resynchronises at the next `Content-Length` header;
- bytes that are no header (garbage) are skipped up to the next `Content-Length`, even without a
  line ending, so the messages after bad framing are served;
- a length that runs past the end of its JSON into the next message's header is cut there, so
  that message is served too (a length a few bytes short shows as truncated JSON: a parse error);
- a message cut short (a header block without its blank line, or a body that stops before its
  length) is refused where the next `Content-Length` line begins, and that next message is served:
  a block holds one Content-Length, and JSON cannot hold a raw line end, so such a line in either
  is always a new header.

What a refused frame's body held, when it starts like a JSON object, comes back as `Refused.body`
so the caller can still read a request id from it and answer (see jsonrpc_checks.read_id).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 8 * 1024  # a header block is a few dozen bytes; more is garbage
MAX_REFUSED_BODY = 64 * 1024  # what is kept of a refused body to read its id from
_HEADER_NAME = b"content-length"
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_CONTENT_LENGTH = re.compile(rb"content-length", re.IGNORECASE)
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*")
_HEADER_LINE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:[ \t]*(.*?)[ \t]*$")
_HEADER_LINE_MAX = 64  # `Content-Length: N` with some blanks: how far back a cut one is looked for
_WHOLE_HEADER_LINE = re.compile(rb"content-length[ \t]{0,8}:[ \t]{0,8}[0-9]{1,20}[ \t]{0,8}\r?\n", re.IGNORECASE)
_PARTIAL_HEADER_LINE = re.compile(rb"content-length[ \t]{0,8}(?::[ \t]{0,8}[0-9]{0,20}[ \t]{0,8}\r?)?")


@dataclass(frozen=True)
class Frame:
    body: bytes


@dataclass(frozen=True)
class Refused:
    """Bytes that were not a well-framed message: why, and what followed the bad header (if any)."""

    reason: str
    body: bytes = b""


class FrameDecoder:
    def __init__(self, max_body: int = MAX_BODY_BYTES):
        self.max_body = max_body
        self._buf = bytearray()
        self._length: int | None = None  # the body length being waited for
        self._scanned = 0  # how far the pending body has been searched for a next header
        self._skipped: bytearray | None = None  # garbage being skipped (its start, to read an id from)
        self._skip_from = 0  # where the next header may start (1 just after a refused one)
        self._skip_reason = ""
        self._skip_reported = False
        self.buffered_peak = 0  # the most bytes held at once (the fuzzer checks it stays bounded)

    def feed(self, data: bytes) -> list[Frame | Refused]:
        self._buf += data
        self.buffered_peak = max(self.buffered_peak, len(self._buf))
        out: list[Frame | Refused] = []
        while True:
            if self._length is not None:
                item = self._body()
            elif self._skipped is not None:
                item = self._skip()
            else:
                item = self._header()
            if item is None:
                return out
            if not isinstance(item, bool):
                out.append(item)

    def close(self) -> list[Frame | Refused]:
        """End of input: what is left is reported (a body shorter than announced, unframed bytes)."""
        out: list[Frame | Refused] = []
        if self._length is not None:
            out.append(Refused(f"the input ended {self._length - len(self._buf)} bytes short of the body"))
        elif self._skipped is not None:
            self._skipped += self._buf[: MAX_REFUSED_BODY - len(self._skipped)]
            if (ended := self._end_skip()) is not None:
                out.append(ended)
        elif self._buf.strip():
            out.append(Refused("unframed bytes at the end of the input", bytes(self._buf[:MAX_REFUSED_BODY]).strip()))
        self._buf.clear()
        self._length = None
        return out

    # -- headers ------------------------------------------------------------------------------
    def _header(self) -> Frame | Refused | bool | None:
        """Read one header block; True: progress without an item; None: wait for more bytes."""
        del self._buf[: len(self._buf) - len(self._buf.lstrip(b"\r\n"))]  # blank lines between messages
        if not self._buf:
            return None
        end = _BLANK_LINE.search(self._buf, 0, MAX_HEADER_BYTES + 4)
        if end is None:
            if len(self._buf) > MAX_HEADER_BYTES or not _could_become_header(self._buf):
                return self._start_skip("bytes that are no LSP header", header_left=True)
            return None  # the rest of the header block is on its way
        block = bytes(self._buf[: end.start()])
        first_line = block.split(b"\n", 1)[0].rstrip(b"\r")
        starts = [m.start() for m in _CONTENT_LENGTH.finditer(block)]
        later = next((at for at in starts if at > 0), 0)
        glued = later > 0 and block[later - 1 : later] != b"\n"
        if later and (glued or _HEADER_LINE.match(first_line) is None):
            # Garbage in front of a header (glued to it or on lines of its own): drop it, read the header.
            del self._buf[:later]
            return Refused("bytes that are no LSP header", block[:later].strip()[:MAX_REFUSED_BODY])
        if len(starts) > 1:
            # A block holds one Content-Length: an earlier one belongs to a header block cut short
            # (its sender stopped before the blank line), so the last one starts the real header.
            del self._buf[: starts[-1]]
            return Refused("a header block cut short", block[: starts[-1]].strip()[:MAX_REFUSED_BODY])
        length, problem = _content_length(block, self.max_body)
        del self._buf[: end.end()]
        if problem is not None:
            return self._start_skip(problem, header_left=False)  # its block is gone
        self._length, self._scanned = length, 0
        return True

    # -- skipping garbage ---------------------------------------------------------------------
    def _start_skip(self, reason: str, header_left: bool) -> bool:
        """Skip to the next header; `header_left`: the refused bytes are still in the buffer (a
        header there is theirs), else what the buffer starts with is already the next message."""
        self._skipped, self._skip_reason, self._skip_reported = bytearray(), reason, False
        self._skip_from = 1 if header_left and _CONTENT_LENGTH.match(self._buf) else 0
        return True

    def _skip(self) -> Refused | bool | None:
        """Drop bytes up to the next `Content-Length` (kept: a header starts there)."""
        assert self._skipped is not None
        found = _CONTENT_LENGTH.search(self._buf, self._skip_from)
        header_at = found.start() if found is not None else None
        del found  # a match holds the buffer: it could not be resized
        cut = header_at if header_at is not None else max(0, len(self._buf) - len(_HEADER_NAME) + 1)
        self._skip_from = 0
        self._skipped += self._buf[: max(0, min(cut, MAX_REFUSED_BODY - len(self._skipped)))]
        del self._buf[:cut]
        if header_at is not None:
            return self._end_skip() or True
        if not self._skip_reported and _complete_json(self._skipped):
            # The body after a refused header is all here: report it now (its request is answered
            # at once, not when the next message arrives).
            self._skip_reported = True
            body, self._skipped = bytes(self._skipped).strip(), bytearray()
            return Refused(self._skip_reason, body)
        return None

    def _end_skip(self) -> Refused | None:
        skipped, self._skipped = bytes(self._skipped or b"").strip(), None
        if self._skip_reported and not skipped:
            return None
        return Refused(self._skip_reason, skipped)

    # -- bodies -------------------------------------------------------------------------------
    def _body(self) -> Frame | Refused | None:
        assert self._length is not None
        # A next message's header inside the body means the announced length was too long: the
        # JSON before that header is the message (whether or not the rest has arrived).
        region = min(len(self._buf), self._length)
        scan_from = max(0, self._scanned - _HEADER_LINE_MAX)
        starts = [m.start() for m in _CONTENT_LENGTH.finditer(self._buf, scan_from, region)]
        for start in starts:
            head = bytes(self._buf[:start]).rstrip()
            if head.endswith(b"}") and _complete_json(head):
                return self._cut_body(start, Frame(head))
        # A whole `Content-Length: N` line cannot be inside a JSON body (JSON strings hold no raw
        # line end): the body was cut short (its sender stopped) and the next message starts there.
        found = _WHOLE_HEADER_LINE.search(self._buf, scan_from)
        at = found.start() if found is not None else region
        del found  # a match holds the buffer: it could not be resized
        if at < region:
            return self._cut_body(at, _cut_short(bytes(self._buf[:at])))
        self._scanned = region
        if len(self._buf) < self._length:
            return None
        body = bytes(self._buf[: self._length])
        self._length = None
        end = body.rfind(b"}") + 1
        tail = body[end:].lstrip().lower()
        if end and tail and _HEADER_NAME.startswith(tail[: len(_HEADER_NAME)]) and _complete_json(body[:end]):
            del self._buf[:end]  # too long by less than a header: the next header starts in it
            return Frame(body[:end])
        if (at := _partial_header_at(body)) is not None and not _complete_json(body):
            del self._buf[:at]  # cut short, and the next header starts in its last bytes
            return _cut_short(body[:at])
        del self._buf[: len(body)]
        return Frame(body)

    def _cut_body(self, at: int, item: Frame | Refused) -> Frame | Refused:
        del self._buf[:at]
        self._length = None
        return item


def _cut_short(head: bytes) -> Frame | Refused:
    """A body that ended where the next message's header begins: a message if it is whole JSON
    (its length was too long), else refused (it was cut short)."""
    head = head.rstrip()
    if _complete_json(head):
        return Frame(head)
    return Refused("a body cut short by the next message's header", head.strip()[:MAX_REFUSED_BODY])


def _partial_header_at(body: bytes) -> int | None:
    """Where the body's last bytes are the start of a `Content-Length: N` line, if they are."""
    lowered = body[-_HEADER_LINE_MAX:].lower()
    offset = len(body) - len(lowered)
    for at in range(len(lowered)):
        tail = lowered[at:]
        if _HEADER_NAME.startswith(tail) or _PARTIAL_HEADER_LINE.fullmatch(tail):
            return offset + at
    return None


def _could_become_header(buf: bytearray) -> bool:
    """Whether bytes without a blank line yet may still turn into a header block."""
    *lines, last = bytes(buf).split(b"\n")
    last = last.rstrip(b"\r")
    if any(_HEADER_LINE.match(line.rstrip(b"\r")) is None for line in lines):
        return False
    name, colon, _ = last.partition(b":")
    return (_TOKEN.fullmatch(name) is not None and len(name) <= 64) if (colon or name) else True


def _content_length(block: bytes, limit: int) -> tuple[int | None, str | None]:
    """The Content-Length of a header block, or why there is none to trust."""
    values = []
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r")
        match = _HEADER_LINE.match(line)
        if match is not None and match.group(1).lower() == _HEADER_NAME:  # other lines: ignored
            values.append(match.group(2))
    if not values:
        return None, "a header without Content-Length"
    value = values[0]  # the only one: _header resynchronises at the last of several
    if not value.isdigit():
        return None, f"Content-Length {value[:24]!r} is not a non-negative decimal number"
    if len(value) > 12 or int(value) > limit:
        return None, f"Content-Length {value[:24].decode()} is over the {limit} byte limit"
    return int(value), None


def _complete_json(data: bytes | bytearray) -> bool:
    if not data.strip().startswith(b"{"):
        return False
    try:
        json.loads(bytes(data))
    except (ValueError, RecursionError):
        return False
    return True
