"""`sdls bench syntax`: parse, incremental reparse, scope, clean-up and plan times on large files.

Prints figures only (no pass/fail). Two parts:
1. a generated Python file of --lines lines: full parse vs incremental reparse after a one-line edit;
2. the largest modules of the Python standard library: parse, reparse, completion scope, clean-up,
   block plan, syntax errors and holes;
3. a line of --brackets unclosed brackets (one ERROR node with that many children: what a tree-sitter
   query cursor is quadratic in): parse, syntax errors, holes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sysconfig
import time
from pathlib import Path

from .cleanup import clean_completion
from .diagnostics import find_holes, syntax_errors
from .document import SyntaxDocument, parser_for
from .plan import plan_blocks
from .scope import completion_scope


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lines", type=int, default=10_000, help="lines in the generated Python file")
    parser.add_argument("--files", type=int, default=3, help="how many of the largest stdlib modules")
    parser.add_argument("--repeat", type=int, default=15, help="timed repetitions per figure (median shown)")
    parser.add_argument("--stdlib", type=Path, default=None, help="directory to take large .py files from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--brackets", type=int, default=50_000, help="unclosed brackets on one line (part 3)")


def run(args: argparse.Namespace) -> int:
    if args.lines < 10 or args.repeat < 1 or args.files < 0:
        print("sdls bench syntax: --lines must be >= 10, --repeat >= 1, --files >= 0")
        return 2
    rng = random.Random(args.seed)
    print(f"== generated Python file, {args.lines} lines ==")
    text = generated_python(args.lines)
    _edit_figures(text, args.repeat, rng, show_lines=True)

    stdlib = args.stdlib or Path(sysconfig.get_paths()["stdlib"])
    files = largest_python_files(stdlib, args.files)
    if args.files and not files:
        print(f"no .py files under {stdlib}")
        return 1
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        print(f"\n== {path.relative_to(stdlib)} ({text.count(chr(10))} lines, {len(text)} chars) ==")
        _edit_figures(text, args.repeat, rng, show_lines=False)
        _feature_figures(text, args.repeat, rng)
    _bracket_figures(args.brackets, max(1, args.repeat // 5))
    return 0


def _bracket_figures(n: int, repeat: int) -> None:
    text = "x = " + "(" * n + "\n"
    print(f"\n== one line of {n} unclosed brackets ==")
    print(f"  parse                               {_ms(_time(lambda: SyntaxDocument(text, 'python'), repeat))}")
    doc = SyntaxDocument(text, "python")
    print(f"  syntax_errors                       {_ms(_time(lambda: syntax_errors(doc), repeat))}")
    print(f"  find_holes                          {_ms(_time(lambda: find_holes(doc), repeat))}")


def generated_python(n_lines: int) -> str:
    """A deterministic module of classes and functions, cut to exactly n_lines lines."""
    lines: list[str] = ["import os", "import sys", ""]
    i = 0
    while len(lines) < n_lines:
        lines += [
            f"class Widget{i}(object):",
            f'    """Widget number {i}."""',
            "    def __init__(self, size, name=None):",
            "        self.size = size",
            f"        self.name = name or 'w{i}'",
            "",
            "    def area(self, scale=1.0):",
            "        total = 0",
            "        for k in range(self.size):",
            "            if k % 3 == 0:",
            "                total += k * scale",
            "            else:",
            f"                total -= helper_{i}(k)",
            "        return total",
            "",
            f"def helper_{i}(value):",
            f"    return [v * {i} for v in range(value) if v % 2] or [os.sep, sys.path[0]]",
            "",
        ]
        i += 1
    return "\n".join(lines[:n_lines]) + "\n"


def largest_python_files(root: Path, count: int) -> list[Path]:
    if count <= 0 or not root.is_dir():
        return []
    candidates = [p for p in root.glob("*.py") if p.is_file()]
    candidates += [p for p in root.glob("*/*.py") if p.is_file() and "site-packages" not in p.parts]
    return sorted(candidates, key=lambda p: p.stat().st_size, reverse=True)[:count]


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:8.3f} ms"


def _time(fn, repeat: int) -> list[float]:
    """CPU seconds per call: on a shared machine wall time mostly measures the neighbours."""
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        samples.append(time.process_time() - t0)
    return samples


def _edit_figures(text: str, repeat: int, rng: random.Random, show_lines: bool) -> None:
    doc = SyntaxDocument(text, "python")
    parser = parser_for("python")
    full = _time(lambda: parser.parse(doc.data), repeat)
    print(f"  full parse                         {_ms(full)}")
    # Type one character and delete it again, at random places of two kinds: inside a word, and at
    # the first character of a line (after its indentation, next to tree-sitter-python's external
    # indent/newline tokens, where reuse is much weaker).
    for label, place in (("inside a word", _inside_word), ("at a line start", _line_start)):
        reparse_only, typed = _typing(doc, parser, repeat, lambda: place(doc.text, rng))
        ratio = statistics.median(full) / max(statistics.median(reparse_only), 1e-9)
        print(
            f"  reparse, edit {label:<16}     {_ms(reparse_only)}   (max {max(reparse_only) * 1e3:.3f} ms;"
            f" median {ratio:.1f}x less than a full parse)"
        )
        print(f"  apply_edit total (edit+reparse)    {_ms(typed)}")
    assert doc.text == text, "edits were not undone"
    if show_lines:
        print(
            f"  ({len(doc.data)} bytes, {doc.tree.root_node.descendant_count} nodes; CPU time, median of"
            f" {repeat} full parses / {2 * repeat} edits of each kind)"
        )


def _inside_word(text: str, rng: random.Random) -> int:
    at = rng.randrange(len(text))
    while at < len(text) - 1 and not (text[at].isalnum() and text[at - 1].isalnum()):
        at += 1
    return at


def _line_start(text: str, rng: random.Random) -> int:
    at = text.rfind("\n", 0, rng.randrange(len(text))) + 1
    while at < len(text) - 1 and text[at] in " \t\n":
        at += 1
    return at


def _typing(doc: SyntaxDocument, parser, repeat: int, pick) -> tuple[list[float], list[float]]:
    """(tree-sitter reparse seconds, apply_edit seconds) for repeat insert+delete pairs."""
    typed: list[float] = []
    reparse_only: list[float] = []
    for k in range(2 * repeat):
        inserting = k % 2 == 0
        if inserting:
            at = pick()
        before_tree = doc.tree.copy()
        b = doc.byte_of(at)
        row, col = doc.point_of_byte(b)
        t0 = time.process_time()
        doc.apply_edit(at, at, "q") if inserting else doc.apply_edit(at, at + 1, "")
        typed.append(time.process_time() - t0)
        # the tree-sitter part alone, on a copy of the tree from before the edit
        grow = 1 if inserting else -1
        before_tree.edit(
            start_byte=b,
            old_end_byte=b + max(0, -grow),
            new_end_byte=b + max(0, grow),
            start_point=(row, col),
            old_end_point=(row, col + max(0, -grow)),
            new_end_point=(row, col + max(0, grow)),
        )
        t0 = time.process_time()
        parser.parse(doc.data, before_tree)
        reparse_only.append(time.process_time() - t0)
    return reparse_only, typed


def _feature_figures(text: str, repeat: int, rng: random.Random) -> None:
    doc = SyntaxDocument(text, "python")
    line_ends = [i for i, c in enumerate(text) if c == "\n"]
    offsets = [rng.choice(line_ends) for _ in range(200)]
    scope_times = []
    for off in offsets:
        t0 = time.process_time()
        completion_scope(doc, off, invoked=False)
        scope_times.append(time.process_time() - t0)
    print(f"  completion_scope at line ends       {_ms(scope_times)}  (median of {len(offsets)})")

    clean_times = []
    for off in offsets[:40]:
        scope = completion_scope(doc, off, invoked=True)
        if scope.kind == "none":
            continue
        t0 = time.process_time()
        clean_completion(doc, off, "  # note)\nvalue = compute(1, 2)\n", scope)
        clean_times.append(time.process_time() - t0)
    if clean_times:
        print(f"  clean_completion (incl. reparse)    {_ms(clean_times)}  (median of {len(clean_times)})")

    whole = [(0, len(text))]
    plan = plan_blocks(doc, whole)
    plan_times = _time(lambda: plan_blocks(doc, whole), max(1, repeat // 3))
    print(
        f"  plan_blocks, whole module           {_ms(plan_times)}  "
        f"({len(plan.blocks)} blocks, {len(plan.waves)} waves, {len(plan.cycles_broken)} cycle links broken)"
    )
    biggest = _largest_class(doc)
    if biggest is not None:
        region = [biggest]
        cplan = plan_blocks(doc, region)
        ctimes = _time(lambda: plan_blocks(doc, region), repeat)
        print(
            f"  plan_blocks, largest class          {_ms(ctimes)}  "
            f"({len(cplan.blocks)} blocks, {len(cplan.waves)} waves)"
        )
    print(f"  syntax_errors                       {_ms(_time(lambda: syntax_errors(doc), repeat))}")
    holes = find_holes(doc)
    print(f"  find_holes                          {_ms(_time(lambda: find_holes(doc), repeat))}  ({len(holes)} holes)")


def _largest_class(doc: SyntaxDocument) -> tuple[int, int] | None:
    best = None
    for node in doc.tree.root_node.named_children:
        target = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
        is_class = target is not None and target.type == "class_definition"
        if is_class and (best is None or node.end_byte - node.start_byte > best.end_byte - best.start_byte):
            best = node
    return doc.node_range(best) if best is not None else None
