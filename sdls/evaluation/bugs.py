"""Inject one realistic bug into a canonical body: the repair suite's input.

Pure and deterministic: the site of a bug is drawn from a `random.Random` seeded by the problem id and
the kind, so the suite is the same on every machine. Every injected body still parses (a syntax error
is not the kind of bug a fix-up sees in an editor) and differs from the canonical one.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import random
import tokenize
from dataclasses import dataclass

KINDS = ("swapped-operator", "wrong-name", "off-by-one", "deleted-line", "typo")

# Operators a slip of the mind turns into another one.
SWAPS = {
    "<": ">",
    ">": "<",
    "<=": ">=",
    ">=": "<=",
    "==": "!=",
    "!=": "==",
    "+": "-",
    "-": "+",
    "*": "/",
    "//": "/",
    "%": "//",
    "+=": "-=",
    "-=": "+=",
    "and": "or",
    "or": "and",
}
# Comparisons whose boundary moves by one.
BOUNDARY = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}


@dataclass(frozen=True)
class Bug:
    kind: str
    description: str  # e.g. "line 3: '<' -> '>'"
    body: str  # the body with the bug in it


@dataclass(frozen=True)
class _Token:
    type: int
    text: str
    start: int  # char offset into the body
    end: int
    line: int  # 1-based line within the body


def _body_tokens(prompt: str, body: str) -> list[_Token]:
    """Tokens of `body`, tokenized in the context of its prompt (so indentation is legal)."""
    source = prompt + body
    line_starts = [0]
    for line in source.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    prompt_lines = prompt.count("\n")
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        start = line_starts[tok.start[0] - 1] + tok.start[1]
        if start < len(prompt) or tok.type in (
            tokenize.NEWLINE,
            tokenize.NL,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
            tokenize.COMMENT,
        ):
            continue
        end = line_starts[tok.end[0] - 1] + tok.end[1]
        out.append(_Token(tok.type, tok.string, start - len(prompt), end - len(prompt), tok.start[0] - prompt_lines))
    return out


def _variables(prompt: str, body: str, entry_point: str) -> set[str]:
    """Parameters and locals of the entry-point function: names a wrong-name slip swaps between."""
    tree = ast.parse(prompt + body)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            args = node.args
            names |= {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    names.add(inner.id)
                elif isinstance(inner, ast.arg):
                    names.add(inner.arg)
    return names


def _replace(body: str, tok: _Token, new: str) -> str:
    return body[: tok.start] + new + body[tok.end :]


def _candidates(kind: str, prompt: str, body: str, entry_point: str, rng: random.Random) -> list[tuple[str, str]]:
    """Every (description, buggy body) of this kind, in source order."""
    tokens = _body_tokens(prompt, body)
    out: list[tuple[str, str]] = []
    if kind == "swapped-operator":
        for tok in tokens:
            if tok.text in SWAPS and (tok.type == tokenize.OP or tok.text in ("and", "or")):
                out.append(
                    (f"line {tok.line}: {tok.text!r} -> {SWAPS[tok.text]!r}", _replace(body, tok, SWAPS[tok.text]))
                )
    elif kind == "wrong-name":
        variables = sorted(_variables(prompt, body, entry_point))
        for i, tok in enumerate(tokens):
            prev = tokens[i - 1].text if i else ""
            if tok.type == tokenize.NAME and tok.text in variables and prev != ".":
                others = [v for v in variables if v != tok.text]
                if others:
                    other = rng.choice(others)
                    out.append((f"line {tok.line}: {tok.text} -> {other}", _replace(body, tok, other)))
    elif kind == "off-by-one":
        for tok in tokens:
            if tok.type == tokenize.NUMBER and tok.text.isdigit():
                new = str(int(tok.text) + rng.choice((-1, 1)) if tok.text != "0" else 1)
                out.append((f"line {tok.line}: {tok.text} -> {new}", _replace(body, tok, new)))
            elif tok.type == tokenize.OP and tok.text in BOUNDARY:
                out.append(
                    (
                        f"line {tok.line}: {tok.text!r} -> {BOUNDARY[tok.text]!r}",
                        _replace(body, tok, BOUNDARY[tok.text]),
                    )
                )
    elif kind == "deleted-line":
        lines = body.splitlines(keepends=True)
        if sum(1 for line in lines if line.strip()) > 1:
            for i, line in enumerate(lines):
                if line.strip():
                    out.append((f"line {i + 1} deleted: {line.strip()!r}", "".join(lines[:i] + lines[i + 1 :])))
    elif kind == "typo":
        known = set(dir(builtins)) | set(keyword.kwlist) | {t.text for t in tokens if t.type == tokenize.NAME}
        for tok in tokens:
            word = tok.text
            if tok.type != tokenize.NAME or keyword.iskeyword(word) or len(word) < 3:
                continue
            j = rng.randrange(len(word) - 1)
            swapped = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
            dropped = word[: j + 1] + word[j + 2 :]
            typo = swapped if word[j] != word[j + 1] else dropped
            if typo not in known and typo.isidentifier():
                out.append((f"line {tok.line}: {word} -> {typo}", _replace(body, tok, typo)))
    else:
        raise ValueError(f"unknown bug kind {kind!r}; known: {', '.join(KINDS)}")
    return out


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def inject_bug(problem_id: str, prompt: str, body: str, entry_point: str, kind: str) -> Bug | None:
    """One bug of `kind` at a seeded site, or None where this kind has no site that still parses."""
    rng = random.Random(f"sdls-repair:{problem_id}:{kind}")
    sites = [(d, b) for d, b in _candidates(kind, prompt, body, entry_point, rng) if b != body and _parses(prompt + b)]
    if not sites:
        return None
    description, buggy = rng.choice(sites)
    return Bug(kind, description, buggy)


def bug_for_problem(problem_id: str, index: int, prompt: str, body: str, entry_point: str) -> Bug:
    """The suite's bug: kinds rotate with the problem index; the next kind is used where one has no site."""
    for step in range(len(KINDS)):
        kind = KINDS[(index + step) % len(KINDS)]
        bug = inject_bug(problem_id, prompt, body, entry_point, kind)
        if bug is not None:
            return bug
    raise ValueError(f"{problem_id}: no bug kind applies to this body")
