"""Text facts shared by the language server and the worker (neither layer may import the other)."""

from __future__ import annotations


def without_lone_surrogates(text: str) -> str:
    """U+FFFD for each lone surrogate (how JSON carries bytes that were not UTF-8).

    One code point for one, and one UTF-16 unit for one, so every position stays where it was,
    while tree-sitter, the tokenizer and msgpack get text they can encode."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
