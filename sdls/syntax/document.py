"""One open document and its tree-sitter tree, kept up to date by incremental reparsing.

The public API speaks Python str offsets (characters); tree-sitter speaks UTF-8 bytes and
(row, byte column) points. All conversion between the two happens here.
"""

from __future__ import annotations

import bisect
import os
import threading
from functools import cache

import tree_sitter

# LSP languageIds (and a few common aliases) -> grammar names in tree_sitter_language_pack.
_LANGUAGE_IDS: dict[str, str] = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",  # the javascript grammar parses JSX
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "tsx": "tsx",
    "go": "go",
    "rust": "rust",
    "lua": "lua",
}
_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".lua": "lua",
}


def language_for(language_id_or_path: str | None) -> str | None:
    """Grammar name for an LSP languageId, a file name/path/URI or an extension; None = plain text."""
    if not language_id_or_path:
        return None
    key = language_id_or_path.strip()
    lowered = key.lower()
    if lowered in _LANGUAGE_IDS:
        name = _LANGUAGE_IDS[lowered]
    else:
        ext = lowered if lowered.startswith(".") and "/" not in lowered else os.path.splitext(lowered)[1]
        name = _EXTENSIONS.get(ext)
    if name is None or _language(name) is None:
        return None
    return name


_THREAD = threading.local()  # a tree-sitter Parser must not be used by two threads at once


@cache
def _language(name: str) -> tree_sitter.Language | None:
    # The pack is imported lazily: plain-text documents never pay for it.
    try:
        from tree_sitter_language_pack import get_language

        return get_language(name)
    except Exception:  # a grammar that cannot load means plain text, never a crash
        return None


def parser_for(name: str) -> tree_sitter.Parser | None:
    """This thread's parser for a grammar (None if the grammar cannot load)."""
    parsers = getattr(_THREAD, "parsers", None)
    if parsers is None:
        parsers = _THREAD.parsers = {}
    if name not in parsers:
        language = _language(name)
        parsers[name] = tree_sitter.Parser(language) if language is not None else None
    return parsers[name]


# Offset conversions in non-ASCII text: the first few per version encode the prefix (C speed, no
# set-up); after that a per-line index pays off (errors, plans and holes convert many offsets).
_DIRECT_LIMIT = 8


class SyntaxDocument:
    """Text + tree for one document. `language` is None for plain text (then `tree` is None).

    One document is not safe to edit from two threads at once; `with_edit` gives an independent copy.
    """

    def __init__(self, text: str, language: str | None = None):
        self.language: str | None = language_for(language)
        self.tree: tree_sitter.Tree | None = None
        self.version = 0  # bumped on every change; lets callers cache per version
        self.replace_all(text)

    # ---- changes -------------------------------------------------------------------------

    def replace_all(self, text: str) -> None:
        """Replace the whole text and parse from scratch."""
        if not isinstance(text, str):
            raise TypeError(f"document text must be str, got {type(text).__name__}")
        self._set_text(text, text.encode("utf-8"))
        parser = parser_for(self.language) if self.language else None
        self.tree = parser.parse(self.data) if parser is not None else None

    def apply_edit(self, start: int, end: int, new_text: str) -> None:
        """Replace text[start:end] (character offsets) with new_text; incremental reparse."""
        n = len(self.text)
        if not (0 <= start <= end <= n):
            raise ValueError(f"edit range [{start}, {end}) is outside the document (length {n})")
        start_byte, old_end_byte = self.byte_of(start), self.byte_of(end)
        start_point, old_end_point = self.point_of_byte(start_byte), self.point_of_byte(old_end_byte)
        inserted = new_text.encode("utf-8")
        data = self.data[:start_byte] + inserted + self.data[old_end_byte:]
        self._set_text(self.text[:start] + new_text + self.text[end:], data)
        if self.tree is None:
            return
        new_end_byte = start_byte + len(inserted)
        self.tree.edit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=new_end_byte,
            start_point=start_point,
            old_end_point=old_end_point,
            new_end_point=self.point_of_byte(new_end_byte),
        )
        self.tree = parser_for(self.language).parse(self.data, self.tree)

    def snapshot(self) -> SyntaxDocument:
        """An independent copy of this text and tree (tree-sitter's copy is shallow and cheap): what
        another thread may read while this document goes on being edited."""
        other = SyntaxDocument.__new__(SyntaxDocument)
        other.language, other.version = self.language, self.version - 1
        other._set_text(self.text, self.data)  # bumps the version back to this one's
        other.tree = self.tree.copy() if self.tree is not None else None
        return other

    def with_edit(self, start: int, end: int, new_text: str) -> SyntaxDocument:
        """A new document with one edit applied; this one is untouched (the tree is copied)."""
        other = SyntaxDocument.__new__(SyntaxDocument)
        other.language, other.version = self.language, self.version
        other._set_text(self.text, self.data)
        other.tree = self.tree.copy() if self.tree is not None else None
        other.apply_edit(start, end, new_text)
        return other

    def _set_text(self, text: str, data: bytes) -> None:
        self.text, self.data = text, data
        self.version += 1
        self._ascii = len(text) == len(data)
        self._line_chars: list[int] | None = None  # built lazily, only for non-ASCII text
        self._direct_conversions = 0  # a few conversions per version are cheaper without the index
        self._line_bytes: list[int] | None = None
        self.cache: dict = {}  # per-version memo for derived facts (indent unit, ...)

    # ---- offsets ---------------------------------------------------------------------------

    def byte_of(self, offset: int) -> int:
        """UTF-8 byte offset of character offset `offset`."""
        if self._ascii:
            return offset
        if self._line_chars is None and self._direct_conversions < _DIRECT_LIMIT:
            self._direct_conversions += 1
            return len(self.text[:offset].encode("utf-8"))
        self._index_lines()
        row = bisect.bisect_right(self._line_chars, offset) - 1
        line_start = self._line_chars[row]
        return self._line_bytes[row] + len(self.text[line_start:offset].encode("utf-8"))

    def offset_of(self, byte: int) -> int:
        """Character offset of UTF-8 byte offset `byte` (a byte inside a character maps to its start)."""
        if self._ascii:
            return byte
        if self._line_chars is None and self._direct_conversions < _DIRECT_LIMIT:
            self._direct_conversions += 1
            return len(self.data[:byte].decode("utf-8", errors="ignore"))
        self._index_lines()
        row = bisect.bisect_right(self._line_bytes, byte) - 1
        line_start = self._line_bytes[row]
        piece = self.data[line_start:byte].decode("utf-8", errors="ignore")
        return self._line_chars[row] + len(piece)

    def point_of_byte(self, byte: int) -> tuple[int, int]:
        """tree-sitter point (row, byte column) of a byte offset."""
        row = self.data.count(b"\n", 0, byte)
        return row, byte - (self.data.rfind(b"\n", 0, byte) + 1)

    def node_range(self, node: tree_sitter.Node) -> tuple[int, int]:
        return self.offset_of(node.start_byte), self.offset_of(node.end_byte)

    def _index_lines(self) -> None:
        if self._line_chars is not None:
            return
        chars, data_pos, char_pos = [0], [0], 0
        for line in self.text.splitlines(keepends=True):
            char_pos += len(line)
            chars.append(char_pos)
        # Only "\n" starts a tree-sitter row, but for offset maths any split works as long as
        # both lists describe the same boundaries.
        byte_pos = 0
        for line in self.text.splitlines(keepends=True):
            byte_pos += len(line.encode("utf-8"))
            data_pos.append(byte_pos)
        self._line_chars, self._line_bytes = chars, data_pos

    # ---- lines -----------------------------------------------------------------------------

    def line_bounds(self, offset: int) -> tuple[int, int]:
        """[start, end) of the line holding `offset`, end excludes the newline."""
        start = self.text.rfind("\n", 0, offset) + 1
        end = self.text.find("\n", offset)
        return start, (len(self.text) if end < 0 else end)

    def node_at(self, offset: int) -> tree_sitter.Node | None:
        """Smallest node covering the character just before `offset` (where typing happens)."""
        if self.tree is None:
            return None
        b = self.byte_of(offset)
        lo = max(0, b - 1)
        return self.tree.root_node.descendant_for_byte_range(lo, b)

    def __repr__(self) -> str:
        return f"SyntaxDocument(language={self.language!r}, chars={len(self.text)}, version={self.version})"
