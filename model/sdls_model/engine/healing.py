"""Token healing: a prefix that ends in spaces after code on its line is decoded without them.

Byte-level BPE tokenizers attach a space to the word after it (" shape" is one token), so a prompt
that ends in "total += " ends on a lone-space token that rarely came before a word in training, and
a model continues it badly (the shipped adapted model wrote "(.area() *..area()" there, and
" shape.area()" once the space is left out). The row is laid out without that whitespace, and the
model's text loses it again where it starts with it: what is inserted still follows the user's
space. Indentation alone (a line start) is left as it is: the models were trained on it.
"""

from __future__ import annotations


def healed_tail(prefix: str) -> str:
    """The spaces and tabs ending `prefix` after non-blank text on its last line, else ""."""
    line = prefix[prefix.rfind("\n") + 1 :]
    code = line.rstrip(" \t")
    return line[len(code) :] if code.strip() else ""


def without_tail(text: str, tail: str) -> str:
    """The model's text as inserted after the user's whitespace."""
    return text[len(tail) :] if tail and text.startswith(tail) else text
