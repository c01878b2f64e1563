"""From "the text so far" (one report per committed block) to what a client is sent, and where the
text ends.

A client gets deltas and never text it would have to take back: a trailing U+FFFD (half of a
UTF-8 character whose other bytes are in the next block) and a tail that may be the start of a stop
string wait for the next report. The text ends before its first stop string, and, with a minimum
indentation (llama.cpp's `n_indent`), before the first later line that is indented less.
"""

from __future__ import annotations


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """text up to its first stop string, and that string (None when there is none)."""
    found = [(i, s) for s in stops if (i := text.find(s)) >= 0]
    if not found:
        return text, None
    i, stop = min(found)
    return text[:i], stop


def cut_at_dedent(text: str, min_indent: int) -> tuple[str, bool]:
    """text up to the line break before its first line (after the first) that has code and fewer than
    `min_indent` leading spaces or tabs; and whether it was cut."""
    if min_indent <= 0:
        return text, False
    lines = text.split("\n")
    for i in range(1, len(lines)):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip(" \t")) < min_indent:
            return "\n".join(lines[:i]), True
    return text, False


def _held_back(text: str, stops: list[str]) -> int:
    """Length of the longest tail of `text` that a stop string starts with."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


class TextStream:
    def __init__(self, stops: list[str] | None = None, min_indent: int = 0):
        self.stops = list(stops or [])
        self.min_indent = min_indent
        self.sent = ""  # everything the client has been sent
        self.stop_type: str | None = None  # "word" (a stop string), "limit" (indent, deadline): the text ended
        self.stopping_word = ""

    @property
    def ended(self) -> bool:
        return self.stop_type is not None

    def feed(self, text: str, final: bool = False) -> str:
        """The delta to send now for the text so far (`final`: the job's whole answer)."""
        if self.ended:
            return ""
        visible, word = cut_at_stop(text, self.stops)
        visible, dedented = cut_at_dedent(visible, self.min_indent)
        if dedented:
            self.stop_type = "limit"
        elif word is not None:
            self.stop_type, self.stopping_word = "word", word
        elif not final:
            visible = visible.rstrip("\ufffd")
            visible = visible[: len(visible) - _held_back(visible, self.stops)]
            if self.min_indent > 0:  # a line's indentation is known only once it has code
                visible = visible[: visible.rfind("\n") + 1]
        return self._advance(visible)

    def end_at_line(self, text: str) -> str:
        """A deadline: end the text at its last line break (never before what was already sent)."""
        if self.ended:
            return ""
        visible, _ = cut_at_dedent(cut_at_stop(text, self.stops)[0], self.min_indent)
        visible = visible[: max(visible.rfind("\n"), 0)]
        self.stop_type = "limit"
        return self._advance(visible if len(visible) >= len(self.sent) else self.sent)

    def _advance(self, visible: str) -> str:
        if not visible.startswith(self.sent):
            return ""  # cannot happen for whole blocks; never take back what was sent
        delta = visible[len(self.sent) :]
        self.sent = visible
        return delta
