"""Render a terminal capture (`tmux capture-pane -p -e`: text with SGR colour codes) to a PNG.

Used by the editor tests to make screenshots of Neovim's real TUI. Handles the SGR codes Neovim
emits: reset, bold/italic/underline/reverse on and off, 16/256/24-bit foreground and background.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

SGR = re.compile(r"\x1b\[([0-9;:]*)m")
OTHER_ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][A-Za-z0-9])")

DEFAULT_FG = (224, 226, 234)
DEFAULT_BG = (20, 22, 27)
# xterm's 16 base colours.
BASE16 = [
    (0, 0, 0),
    (205, 0, 0),
    (0, 205, 0),
    (205, 205, 0),
    (0, 0, 238),
    (205, 0, 205),
    (0, 205, 205),
    (229, 229, 229),
    (127, 127, 127),
    (255, 0, 0),
    (0, 255, 0),
    (255, 255, 0),
    (92, 92, 255),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 255),
]


def xterm256(n: int) -> tuple[int, int, int]:
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[(n // 6) % 6], steps[n % 6]
    level = 8 + (n - 232) * 10
    return level, level, level


@dataclass(frozen=True)
class Style:
    fg: tuple[int, int, int] | None = None  # None = the terminal default
    bg: tuple[int, int, int] | None = None
    bold: bool = False
    italic: bool = False
    underline: bool = False
    reverse: bool = False


def apply_sgr(style: Style, params: str) -> Style:
    """The style after one SGR sequence's parameters ("1;38;2;10;20;30")."""
    codes = [int(p) if p else 0 for p in re.split(r"[;:]", params)] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style = Style()
        elif c in (1, 3, 4, 7):
            style = replace(style, **{{1: "bold", 3: "italic", 4: "underline", 7: "reverse"}[c]: True})
        elif c in (22, 23, 24, 27):
            style = replace(style, **{{22: "bold", 23: "italic", 24: "underline", 27: "reverse"}[c]: False})
        elif 30 <= c <= 37 or 90 <= c <= 97:
            style = replace(style, fg=BASE16[c - 30 if c < 90 else c - 90 + 8])
        elif 40 <= c <= 47 or 100 <= c <= 107:
            style = replace(style, bg=BASE16[c - 40 if c < 100 else c - 100 + 8])
        elif c == 39:
            style = replace(style, fg=None)
        elif c == 49:
            style = replace(style, bg=None)
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                style = replace(style, **{key: xterm256(codes[i + 2])})
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                style = replace(style, **{key: tuple(codes[i + 2 : i + 5])})
                i += 4
        i += 1
    return style


def parse(capture: str) -> list[list[tuple[str, Style]]]:
    """Rows of (character, style) cells. Styles carry over line ends, as in tmux's capture."""
    rows: list[list[tuple[str, Style]]] = []
    style = Style()
    for line in capture.split("\n"):
        row: list[tuple[str, Style]] = []
        pos = 0
        for m in SGR.finditer(line):
            row.extend((ch, style) for ch in OTHER_ESCAPE.sub("", line[pos : m.start()]))
            style = apply_sgr(style, m.group(1))
            pos = m.end()
        row.extend((ch, style) for ch in OTHER_ESCAPE.sub("", line[pos:]))
        rows.append(row)
    while rows and not rows[-1]:
        rows.pop()
    return rows


def plain_text(capture: str) -> str:
    return "\n".join("".join(ch for ch, _ in row) for row in parse(capture))


def _font(style: str, size: int):
    """DejaVu Sans Mono from the system fonts or matplotlib's copy; PIL's own font otherwise."""
    from PIL import ImageFont

    name = f"DejaVuSansMono{style}.ttf"
    candidates = [Path("/usr/share/fonts/truetype/dejavu") / name]
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name)
    except ImportError:
        pass
    for path in candidates:
        if path.exists():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def render(capture: str, path: Path, columns: int, font_size: int = 16, cursor: tuple[int, int] | None = None) -> Path:
    """Draw the capture as a PNG of `columns` cells per row; `cursor` (column, row) as a bar."""
    from PIL import Image, ImageDraw

    regular, bold, oblique = (_font(style, font_size) for style in ("", "-Bold", "-Oblique"))
    _left, top, _right, bottom = regular.getbbox("M")
    cell_w, cell_h = regular.getlength("M"), int(font_size * 1.35)
    rows = parse(capture)
    pad = 10
    image = Image.new("RGB", (int(columns * cell_w) + 2 * pad, len(rows) * cell_h + 2 * pad), DEFAULT_BG)
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(rows):
        for x, (ch, st) in enumerate(row):
            fg, bg = st.fg or DEFAULT_FG, st.bg or DEFAULT_BG
            if st.reverse:
                fg, bg = bg, fg
            x0, y0 = pad + x * cell_w, pad + y * cell_h
            if bg != DEFAULT_BG:
                draw.rectangle([x0, y0, x0 + cell_w, y0 + cell_h], fill=bg)
            if ch.strip():
                font = bold if st.bold else oblique if st.italic else regular
                draw.text((x0, y0 + (cell_h - (bottom - top)) / 2 - top), ch, font=font, fill=fg)
            if st.underline:
                draw.line([x0, y0 + cell_h - 2, x0 + cell_w, y0 + cell_h - 2], fill=fg)
    if cursor is not None:
        x0, y0 = pad + cursor[0] * cell_w, pad + cursor[1] * cell_h
        draw.rectangle([x0, y0 + 1, x0 + 1, y0 + cell_h - 2], fill=DEFAULT_FG)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
