"""Small text facts that do not need a tree: brackets outside strings/comments, indentation.

Model output is a fragment that rarely parses on its own, so bracket balance is read with a
per-language scanner that skips strings and comments instead of with tree-sitter.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}


@dataclass(frozen=True)
class LexRules:
    line_comments: tuple[str, ...] = ()
    block_comments: tuple[tuple[str, str], ...] = ()
    quotes: tuple[str, ...] = ()  # longest first: '"""' before '"'
    raw_quotes: tuple[str, ...] = ()  # no escapes inside (Go backquote)
    long_brackets: bool = False  # Lua [[ ... ]]
    char_or_lifetime: bool = False  # Rust: 'a is a lifetime, 'a' a char


_C_LIKE = dict(line_comments=("//",), block_comments=(("/*", "*/"),))
RULES: dict[str | None, LexRules] = {
    None: LexRules(),
    "python": LexRules(line_comments=("#",), quotes=('"""', "'''", '"', "'")),
    "javascript": LexRules(**_C_LIKE, quotes=('"', "'", "`")),
    "typescript": LexRules(**_C_LIKE, quotes=('"', "'", "`")),
    "tsx": LexRules(**_C_LIKE, quotes=('"', "'", "`")),
    "go": LexRules(**_C_LIKE, quotes=('"', "'"), raw_quotes=("`",)),
    "rust": LexRules(**_C_LIKE, quotes=('"',), char_or_lifetime=True),
    "lua": LexRules(line_comments=("--",), block_comments=(("--[[", "]]"),), quotes=('"', "'"), long_brackets=True),
}


def bracket_events(text: str, language: str | None) -> list[tuple[int, str]]:
    """(position, bracket char) for every bracket outside strings and comments, in order."""
    rules = RULES.get(language, RULES[None])
    interesting = _interesting(rules)
    events: list[tuple[int, str]] = []
    i = 0
    while True:
        found = interesting.search(text, i)  # jump over plain code in C, not char by char
        if found is None:
            return events
        i = found.start()
        c = text[i]
        skipped = _skip_literal(text, i, rules)
        if skipped is not None:
            i = skipped
        else:
            if c in OPENERS or c in CLOSERS:
                events.append((i, c))
            i += 1


@cache
def _interesting(rules: LexRules) -> re.Pattern:
    """Characters where a bracket, string or comment may start."""
    starts = set("()[]{}")
    starts |= {m[0] for m in rules.line_comments}
    starts |= {pair[0][0] for pair in rules.block_comments}
    starts |= {q[0] for q in rules.quotes + rules.raw_quotes}
    if rules.char_or_lifetime:
        starts.add("'")
    return re.compile("[" + "".join(re.escape(c) for c in sorted(starts)) + "]")


def _skip_literal(text: str, i: int, rules: LexRules) -> int | None:
    """If a comment or string starts at i, the index after it (or len(text)); else None."""
    for opener, closer in rules.block_comments:
        if text.startswith(opener, i):
            end = text.find(closer, i + len(opener))
            return len(text) if end < 0 else end + len(closer)
    for marker in rules.line_comments:
        if text.startswith(marker, i):
            end = text.find("\n", i)
            return len(text) if end < 0 else end
    if rules.long_brackets and text.startswith("[[", i):
        end = text.find("]]", i + 2)
        return len(text) if end < 0 else end + 2
    for quote in rules.raw_quotes:
        if text.startswith(quote, i):
            end = text.find(quote, i + len(quote))
            return len(text) if end < 0 else end + len(quote)
    if rules.char_or_lifetime and text[i] == "'":
        # 'x' or '\n' is a char literal; 'a followed by anything else is a lifetime.
        if text.startswith("'\\", i):
            end = text.find("'", i + 2)
            return len(text) if end < 0 else end + 1
        return i + 3 if i + 2 < len(text) and text[i + 2] == "'" else i + 1
    for quote in rules.quotes:
        if text.startswith(quote, i):
            return _string_end(text, i + len(quote), quote)
    return None


def _string_end(text: str, j: int, quote: str) -> int:
    multi_line = len(quote) == 3 or quote == "`"
    n = len(text)
    while j < n:
        if text[j] == "\\":
            j += 2
            continue
        if text.startswith(quote, j):
            return j + len(quote)
        if text[j] == "\n" and not multi_line:
            return j  # an unterminated one-line string ends at the line end
        j += 1
    return n


def unclosed_openers(text: str, language: str | None) -> list[tuple[int, str]]:
    """Openers in `text` that `text` itself never closes, outermost first."""
    stack: list[tuple[int, str]] = []
    for pos, c in bracket_events(text, language):
        if c in OPENERS:
            stack.append((pos, c))
        elif stack and stack[-1][1] == CLOSERS[c]:
            stack.pop()
        # a stray closer in the prefix is the user's problem, not ours: ignore it
    return stack


def closers_of_outer(text: str, language: str | None) -> list[tuple[int, str]]:
    """Closers in `text` that close brackets opened before `text`, in order (innermost first)."""
    depth: list[str] = []
    outer: list[tuple[int, str]] = []
    for pos, c in bracket_events(text, language):
        if c in OPENERS:
            depth.append(c)
        elif depth:
            depth.pop()
        else:
            outer.append((pos, c))
    return outer


# ---- indentation -----------------------------------------------------------------------------


def leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_unit(text: str, max_lines: int = 4000) -> str:
    """The file's indentation step: a tab, or the most common positive increase in spaces (default 4)."""
    steps: Counter[int] = Counter()
    previous = 0
    tabs = spaces = 0
    for line in text.split("\n", max_lines)[:max_lines]:
        if not line.strip():
            continue
        ws = leading_ws(line)
        if ws.startswith("\t"):
            tabs += 1
        elif ws:
            spaces += 1
        width = len(ws.expandtabs(4)) if "\t" in ws else len(ws)
        if width > previous:
            steps[width - previous] += 1
        previous = width
    if tabs > spaces:
        return "\t"
    return " " * steps.most_common(1)[0][0] if steps else "    "


def next_nonblank_line(text: str, pos: int) -> str | None:
    """The first non-blank line after the line ending at `pos`, or None at end of file."""
    while pos < len(text):
        start = pos + 1
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if text[start:end].strip():
            return text[start:end]
        pos = end
    return None
