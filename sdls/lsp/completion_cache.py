"""LRU cache of inline completions that also serves the user typing along a shown suggestion.

Keyed by what the model saw (prefix window, suffix window), not by document versions: the same
prompt gives the same completion. If the user types the first characters of a suggestion, the new
prefix is the old one plus those characters and the answer is the rest of the suggestion, with no
model call (Tabby's "forwarding" entries).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedCompletion:
    text: str  # "" = the model had nothing usable for this prompt (see `reason`)
    replace_len: int  # characters after the cursor the completion replaces (trailing closers)
    along: int = 0  # characters of the original suggestion the user has typed since
    reason: str = ""


class CompletionCache:
    def __init__(self, size: int = 256, along_candidates: int = 8):
        self.size = size
        self.along_candidates = along_candidates
        self._entries: OrderedDict[tuple[str, str, str], CachedCompletion] = OrderedDict()
        self.hits = self.along_hits = self.misses = 0

    def put(self, uri: str, prefix: str, suffix: str, completion: CachedCompletion) -> None:
        key = (uri, prefix, suffix)
        self._entries[key] = completion
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def get(self, uri: str, prefix: str, suffix: str) -> CachedCompletion | None:
        key = (uri, prefix, suffix)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return found
        checked = 0
        for (e_uri, e_prefix, e_suffix), entry in reversed(self._entries.items()):
            if e_uri != uri:
                continue
            checked += 1
            if checked > self.along_candidates:
                break
            if e_suffix != suffix or len(prefix) <= len(e_prefix) or not prefix.startswith(e_prefix):
                continue
            typed = prefix[len(e_prefix) :]
            if entry.text.startswith(typed) and len(typed) < len(entry.text):
                self.along_hits += 1
                return CachedCompletion(entry.text[len(typed) :], entry.replace_len, entry.along + len(typed))
        self.misses += 1
        return None

    def forget(self, uri: str) -> None:
        for key in [k for k in self._entries if k[0] == uri]:
            del self._entries[key]
