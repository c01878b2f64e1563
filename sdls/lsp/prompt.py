"""What the model sees for an infill: prefix/suffix windows and cross-file declarations. Pure functions.

The engine fits the prompt to its token budget itself; these character windows only bound what
crosses the socket (a 5 MB file never does) and keep the prefix's start fixed while the user types,
so the worker's warm context for the document stays valid: the window start moves in whole
`step` jumps snapped to a line start, not on every keystroke.
"""

from __future__ import annotations

from dataclasses import dataclass

_COMMENT = {"python": "#", "lua": "--"}  # others use "//"


@dataclass(frozen=True)
class Prompt:
    prefix: str  # header + the text before the cursor (windowed)
    suffix: str  # the text after the cursor (windowed)
    anchor: int  # document offset where the prefix window starts
    header: str  # cross-file declarations that were prepended


def prefix_window_start(text: str, offset: int, budget: int, step: int | None = None) -> int:
    """Start of a prefix window of about `budget` characters ending at `offset`, stable while typing."""
    if offset <= budget:
        return 0
    step = step or max(1, budget // 4)
    # Quantise: the start only moves when the cursor crosses a multiple of `step`.
    start = ((offset - budget) // step + 1) * step
    newline = text.find("\n", start, offset)
    return newline + 1 if newline >= 0 else start


def suffix_window_end(text: str, offset: int, budget: int) -> int:
    if len(text) - offset <= budget:
        return len(text)
    end = text.rfind("\n", offset, offset + budget)
    return end + 1 if end > offset else offset + budget


def comment_prefix(language: str | None) -> str:
    return _COMMENT.get(language or "", "//")


def declarations_header(language: str | None, files: list[tuple[str, list[str]]], budget: int) -> str:
    """Declarations of imported files as comment-introduced blocks, within `budget` characters."""
    mark = comment_prefix(language)
    parts: list[str] = []
    used = 0
    for name, decls in files:
        block = f"{mark} from {name}:\n" + "".join(d.rstrip() + "\n" for d in decls) + "\n"
        if used + len(block) > budget:
            break
        parts.append(block)
        used += len(block)
    return "".join(parts)


def build_prompt(text: str, offset: int, prefix_chars: int, suffix_chars: int, header: str = "") -> Prompt:
    anchor = prefix_window_start(text, offset, prefix_chars)
    suffix_end = suffix_window_end(text, offset, suffix_chars)
    return Prompt(prefix=header + text[anchor:offset], suffix=text[offset:suffix_end], anchor=anchor, header=header)
