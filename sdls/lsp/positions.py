"""LSP positions (line, column) <-> Python string offsets (code points).

LSP counts columns in UTF-16 code units unless the client negotiated "utf-8" or "utf-32";
Python indexes code points. A character outside the Basic Multilingual Plane (an emoji, say) is
one code point but two UTF-16 units, and a column that lands between those two units names no
place in the text: that is a bad request, not a rounding case.
Lines end at "\\n", "\\r\\n" or a lone "\\r", as the LSP specification says.
"""

from __future__ import annotations

import re
from bisect import bisect_right

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class PositionError(ValueError):
    """A position that does not name a place in the document."""


def line_starts(text: str) -> list[int]:
    """Offsets at which each line starts; always at least [0]."""
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def _line_end(text: str, starts: list[int], line: int) -> int:
    """Offset of the end of `line`, before its line break."""
    if line + 1 < len(starts):
        end = starts[line + 1]
        if text[end - 2 : end] == "\r\n":
            return end - 2
        return end - 1
    return len(text)


ENCODINGS = ("utf-16", "utf-8", "utf-32")


def _units(ch: str, encoding: str) -> int:
    """Code units of one code point (a lone surrogate counts as the 3 bytes WTF-8 gives it)."""
    code = ord(ch)
    if encoding == "utf-16":
        return 2 if code > 0xFFFF else 1
    if encoding == "utf-8":
        return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    return 1


def unit_length(s: str, encoding: str = "utf-16") -> int:
    """Length of `s` in the code units of `encoding` (UTF-16 by default)."""
    if s.isascii() or encoding == "utf-32":
        return len(s)
    return sum(_units(ch, encoding) for ch in s)


def column_to_index(line_text: str, column: int, encoding: str = "utf-16") -> int:
    """Code-point index in `line_text` of a column; columns past the end clamp to the end."""
    if column < 0:
        raise PositionError(f"column {column} is negative")
    if line_text.isascii() or encoding == "utf-32":
        return min(column, len(line_text))
    units = 0
    for index, ch in enumerate(line_text):
        if units == column:
            return index
        units += _units(ch, encoding)
        if units > column:
            inside = "UTF-16 surrogate pair" if encoding == "utf-16" else "UTF-8 sequence"
            raise PositionError(f"column {column} falls inside the {inside} of {ch!r} (character {index} of the line)")
    return len(line_text)


def to_offset(text: str, line: int, column: int, starts: list[int] | None = None, encoding: str = "utf-16") -> int:
    """String offset of an LSP position.

    A line past the last one is an error (the client and server disagree about the text); a column
    past the end of its line clamps to the line end, as the LSP specification prescribes.
    """
    starts = starts if starts is not None else line_starts(text)
    if line < 0:
        raise PositionError(f"line {line} is negative")
    if line >= len(starts):
        raise PositionError(f"line {line} is past the end of the document ({len(starts)} lines)")
    start, end = starts[line], _line_end(text, starts, line)
    return start + column_to_index(text[start:end], column, encoding)


def to_position(text: str, offset: int, starts: list[int] | None = None, encoding: str = "utf-16") -> tuple[int, int]:
    """LSP (line, column) of a string offset."""
    if not 0 <= offset <= len(text):
        raise PositionError(f"offset {offset} is outside the document (length {len(text)})")
    starts = starts if starts is not None else line_starts(text)
    line = bisect_right(starts, offset) - 1
    # An offset between "\r" and "\n" belongs to the line the "\r\n" ends.
    return line, unit_length(text[starts[line] : offset], encoding)


class LineIndex:
    """Line starts of one text, computed once so that a 5 MB document is not rescanned per request."""

    def __init__(self, text: str, encoding: str = "utf-16"):
        if encoding not in ENCODINGS:
            raise ValueError(f"position encoding {encoding!r} is not one of {ENCODINGS}")
        self.text = text
        self.encoding = encoding
        self.starts = line_starts(text)

    def offset(self, line: int, column: int) -> int:
        return to_offset(self.text, line, column, self.starts, self.encoding)

    def position(self, offset: int) -> tuple[int, int]:
        return to_position(self.text, offset, self.starts, self.encoding)
