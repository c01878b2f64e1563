"""UTF-16 (and UTF-8/32) LSP positions <-> str offsets, line breaks, bad positions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdls.lsp.positions import LineIndex, PositionError, line_starts, to_offset, to_position

EMOJI = "\U0001f600"  # one code point, two UTF-16 units, four UTF-8 bytes


def check(text: str, line: int, column: int, offset: int, encoding: str = "utf-16") -> None:
    index = LineIndex(text, encoding)
    assert index.offset(line, column) == offset
    assert index.position(offset) == (line, column)


@pytest.mark.parametrize(
    "text, line, column, offset",
    [
        ("abc\ndef", 1, 2, 6),
        ("abc\r\ndef", 1, 0, 5),  # CRLF is one line break
        ("abc\rdef", 1, 1, 5),  # a lone CR too
        (f"a{EMOJI}b", 0, 3, 2),  # the emoji counts 2 UTF-16 units
        (f"{EMOJI}{EMOJI}\nx", 1, 1, 4),
        ("é\nü", 1, 1, 3),  # BMP non-ASCII: 1 unit each
        ("", 0, 0, 0),
        ("abc\n", 1, 0, 4),  # the empty last line exists
    ],
)
def test_positions_round_trip(text, line, column, offset):
    check(text, line, column, offset)


@pytest.mark.parametrize("encoding, column, offset", [("utf-8", 5, 2), ("utf-32", 2, 2)])
def test_other_negotiated_encodings(encoding, column, offset):
    check(f"a{EMOJI}b", 0, column, offset, encoding)


def test_column_past_end_of_line_clamps_to_the_line_end():
    assert to_offset("ab\ncd", 0, 99) == 2
    assert to_offset(f"a{EMOJI}", 0, 99) == 2


@pytest.mark.parametrize(
    "text, line, column, message",
    [
        ("ab\ncd", 2, 0, "past the end of the document"),
        ("ab", -1, 0, "negative"),
        ("ab", 0, -3, "negative"),
        (f"a{EMOJI}b", 0, 2, "surrogate pair"),
    ],
)
def test_bad_positions_are_errors(text, line, column, message):
    with pytest.raises(PositionError, match=message):
        to_offset(text, line, column)


def test_inside_a_utf8_sequence_is_an_error():
    with pytest.raises(PositionError, match="UTF-8 sequence"):
        to_offset("é", 0, 1, encoding="utf-8")


def test_offset_outside_text_is_an_error():
    with pytest.raises(PositionError, match="outside"):
        to_position("abc", 4)


def test_line_starts_of_mixed_breaks():
    assert line_starts("a\r\nb\rc\nd") == [0, 3, 5, 7]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(["a", "\n", "\r", "é", EMOJI, " "]), max_size=40), st.data())
def test_every_offset_round_trips(text, data):
    index = LineIndex(text)
    offset = data.draw(st.integers(0, len(text)))
    if text[offset - 1 : offset + 1] == "\r\n":
        offset -= 1  # between CR and LF is not a place an LSP position can name
    line, column = index.position(offset)
    assert index.offset(line, column) == offset
