"""Open documents: text, version and tree-sitter tree, kept current from incremental changes.

Plain data, no LSP types: the handlers translate didOpen/didChange into these calls.
A document that looks binary, or that is larger than the configured limit, is kept as plain text
(no parse) and marked so that features can decline politely instead of choking on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sdls.syntax.document import SyntaxDocument, language_for
from sdls.text import without_lone_surrogates

from .positions import LineIndex, PositionError


class UnknownDocument(KeyError):
    """A request named a URI the client never opened."""

    def __str__(self) -> str:
        return f"document {self.args[0]} is not open (send textDocument/didOpen first)"


class DocumentOutOfSync(UnknownDocument):
    """A didChange did not fit the text: the server's copy is no longer the editor's."""

    def __str__(self) -> str:
        return f"document {self.args[0]} is out of sync ({self.args[1]}); close and reopen it"


class VersionNotIncreasing(ValueError):
    """A didChange whose version is not greater than the document's: the document is out of sync."""


def looks_binary(text: str) -> bool:
    """NUL characters in the first 8 KB: what git and grep use to call a file binary."""
    return "\x00" in text[:8192]


@dataclass
class OpenDocument:
    uri: str
    language_id: str
    version: int
    syntax: SyntaxDocument
    binary: bool = False
    oversized: bool = False
    encoding: str = "utf-16"  # the position encoding negotiated with the client
    out_of_sync: str | None = None  # why a change could not be applied; features refuse until reopened
    _lines: LineIndex | None = field(default=None, repr=False)
    _digest: tuple[str, str] | None = field(default=None, repr=False)  # (text it was computed on, digest)

    @property
    def text(self) -> str:
        return self.syntax.text

    @property
    def language(self) -> str | None:
        """Grammar name, or None for plain text (unknown language, binary or oversized)."""
        return self.syntax.language

    @property
    def lines(self) -> LineIndex:
        if self._lines is None or self._lines.text is not self.syntax.text:
            self._lines = LineIndex(self.syntax.text, self.encoding)
        return self._lines

    @property
    def digest(self) -> str:
        """A hash of the text: what a code action or fix-up is bound to beside the version (a version
        number can come back with another text, e.g. after a close and reopen)."""
        if self._digest is None or self._digest[0] is not self.syntax.text:
            text = self.syntax.text
            self._digest = (text, hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest())
        return self._digest[1]

    def offset(self, line: int, character: int) -> int:
        return self.lines.offset(line, character)

    def position(self, offset: int) -> tuple[int, int]:
        return self.lines.position(offset)


class DocumentStore:
    def __init__(self, max_chars: int = 2_000_000, encoding: str = "utf-16"):
        self.max_chars = max_chars
        self.encoding = encoding
        self._docs: dict[str, OpenDocument] = {}

    def __contains__(self, uri: str) -> bool:
        return uri in self._docs

    def get(self, uri: str) -> OpenDocument:
        try:
            doc = self._docs[uri]
        except KeyError:
            raise UnknownDocument(uri) from None
        if doc.out_of_sync:
            raise DocumentOutOfSync(uri, doc.out_of_sync)
        return doc

    def find(self, uri: str) -> OpenDocument | None:
        """The document open at `uri`, or None if it is not (closed meanwhile); one out of sync raises as in get."""
        return self.get(uri) if uri in self._docs else None

    def version_of(self, uri: str) -> int | None:
        """The version open at `uri` (in sync or not), or None."""
        doc = self._docs.get(uri)
        return None if doc is None else doc.version

    def all(self) -> list[OpenDocument]:
        return list(self._docs.values())

    def open(self, uri: str, language_id: str, version: int, text: str) -> OpenDocument:
        text = without_lone_surrogates(text)
        binary = looks_binary(text)
        oversized = len(text) > self.max_chars
        language = None if binary or oversized else (language_for(language_id) or language_for(uri))
        doc = OpenDocument(uri, language_id, version, SyntaxDocument(text, language), binary, oversized, self.encoding)
        self._docs[uri] = doc
        return doc

    def change(
        self, uri: str, version: int, changes: list[tuple[tuple[int, int, int, int] | None, str]]
    ) -> OpenDocument:
        """Apply changes in order; each is ((start line, start col, end line, end col) | None for the
        whole text, new text). A change with a range that does not fit the text resyncs nothing and
        raises PositionError, a version not greater than the document's raises VersionNotIncreasing:
        either way the client and server disagree, and the document is out of sync until reopened."""
        doc = self.get(uri)
        if version <= doc.version:  # LSP versions only grow: a client that goes back is not the server's copy
            doc.out_of_sync = f"version {version} does not follow version {doc.version}"
            raise VersionNotIncreasing(doc.out_of_sync)
        for span, new_text in changes:
            if span is None:
                doc = self.open(uri, doc.language_id, version, new_text)
                continue
            try:
                start = doc.offset(span[0], span[1])
                end = doc.offset(span[2], span[3])
                if end < start:
                    raise PositionError(f"change range ends before it starts: {span}")
            except PositionError as exc:
                doc.out_of_sync = f"version {version}: {exc}"
                raise
            doc.syntax.apply_edit(start, end, without_lone_surrogates(new_text))
            if len(doc.text) > self.max_chars and not doc.oversized:
                doc = self.open(uri, doc.language_id, version, doc.text)
        doc.version = version
        return doc

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)
