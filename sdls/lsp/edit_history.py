"""A short, bounded history of what the user changed in one document: the input of next-edit suggestions.

Each didChange becomes one `EditEvent` (the span it replaced, the old and the new text, the version it
made), found by comparing the text before and after the change, so it works the same for incremental
and full-text changes. Keystrokes that touch the last event's span (typing a name, deleting it) merge
into that event: renaming `total` to `count` by deleting and retyping is one event, `total -> count`.
Earlier events are shifted as the text before them moves; an event whose text a later change overlaps
is marked vanished and never used again. Bounded in entries and characters; dropped with the document.

Plain data, no LSP types.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

MAX_EVENT_CHARS = 4096  # an event with more old or new text than this is kept as "large" (no text)
_CHUNK = 4096


@dataclass
class EditEvent:
    version: int  # the document version this event (its last keystroke) produced
    start: int  # where `new` sits in the current text (kept current as the text before it moves)
    old: str  # the text the user replaced
    new: str  # the text the user typed there
    large: bool = False  # too big to keep the text: never used by rules or windows
    vanished: bool = False  # a later change overlapped it without merging: its text is gone
    accepted: bool = False  # it applied a suggestion sdls made (not the user's own typing)

    @property
    def end(self) -> int:
        return self.start + len(self.new)

    def holds(self, text: str) -> bool:
        """Is the event's new text still at its place in `text`? (Anything else references vanished text.)"""
        return not (self.large or self.vanished) and text[self.start : self.end] == self.new


def common_prefix(a: str, b: str, limit: int) -> int:
    """Length of the common prefix of a and b, at most `limit` (compared a chunk at a time)."""
    n, i = min(len(a), len(b), limit), 0
    while i < n:
        j = min(n, i + _CHUNK)
        if a[i:j] == b[i:j]:
            i = j
            continue
        while a[i] == b[i]:
            i += 1
        return i
    return n


def common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the common suffix of a and b, at most `limit`."""
    n, k = min(len(a), len(b), limit), 0
    while k < n:
        m = min(n, k + _CHUNK)
        if a[len(a) - m : len(a) - k] == b[len(b) - m : len(b) - k]:
            k = m
            continue
        while a[len(a) - 1 - k] == b[len(b) - 1 - k]:
            k += 1
        return k
    return n


def changed_span(before: str, after: str, hint: int | None = None) -> tuple[int, int, str] | None:
    """(start, end in `before`, replacement) turning before into after, or None if equal. `hint`, the
    start of the first change as the editor sent it, breaks ties in repeated text (typing "l" after "l")."""
    if before is after or before == after:
        return None
    limit = len(before) if hint is None else max(0, hint)
    p = common_prefix(before, after, limit)
    s = common_suffix(before, after, min(len(before), len(after)) - p)
    return p, len(before) - s, after[p : len(after) - s]


class EditHistory:
    """The last `max_events` events of one document, holding at most `max_chars` characters of text."""

    def __init__(self, max_events: int = 16, max_chars: int = 65536):
        self.max_events, self.max_chars = max_events, max_chars
        self.events: deque[EditEvent] = deque()

    def observe(self, version: int, span: tuple[int, int, str], before: str, accepted: bool = False) -> EditEvent:
        """Record the change `span` (start, end in `before`, new text; see changed_span) that made `version`;
        `accepted`: it applied a suggestion sdls made. Returns the event it made or grew."""
        start, end, new = span
        last = self.events[-1] if self.events else None
        if (
            last is not None
            and not (accepted or last.accepted)  # only the user's own typing merges
            and last.holds(before)
            and start <= last.end
            and end >= last.start
        ):
            self._shift_others(start, end, len(new), keep=last)
            self._merge(last, version, before, start, end, new)
            self._bound()
            return last
        self._shift_others(start, end, len(new), keep=None)
        old = before[start:end]
        if len(old) > MAX_EVENT_CHARS or len(new) > MAX_EVENT_CHARS:
            event = EditEvent(version, start, "", "", large=True, vanished=True, accepted=accepted)
        else:
            event = EditEvent(version, start, old, new, accepted=accepted)
        self.events.append(event)
        self._bound()
        return event

    def _merge(self, last: EditEvent, version: int, before: str, start: int, end: int, new: str) -> None:
        lo, hi = min(start, last.start), max(end, last.end)
        old = before[lo : last.start] + last.old + before[last.end : hi]
        merged_new = before[lo:start] + new + before[end:hi]
        last.start, last.old, last.new, last.version = lo, old, merged_new, version
        if len(old) > MAX_EVENT_CHARS or len(merged_new) > MAX_EVENT_CHARS:
            last.large, last.vanished, last.old, last.new = True, True, "", ""

    def _shift_others(self, start: int, end: int, inserted: int, keep: EditEvent | None) -> None:
        """Keep the other events' places current: a change before one moves it, one over it makes it vanish."""
        delta = inserted - (end - start)
        for event in self.events:
            if event is keep or event.vanished:
                continue
            if event.start >= end:
                event.start += delta
            elif event.end > start:
                event.vanished = True

    def _bound(self) -> None:
        while len(self.events) > self.max_events:
            self.events.popleft()
        while len(self.events) > 1 and sum(len(e.old) + len(e.new) for e in self.events) > self.max_chars:
            self.events.popleft()

    def user_event(self, text: str) -> EditEvent | None:
        """The newest event the user typed themselves (not an accepted suggestion), if its text is still
        in place in `text`; None when there is none or its text has gone."""
        for event in reversed(self.events):
            if not event.accepted:
                return event if event.holds(text) else None
        return None

    def accepted_since(self, event: EditEvent) -> list[EditEvent]:
        """Accepted suggestions recorded after `event` (the sites a chain of suggestions already did)."""
        seen, out = False, []
        for e in self.events:
            if e is event:
                seen = True
            elif seen and e.accepted and not e.vanished:
                out.append(e)
        return out
