"""Training spans cut from Python files, with the def-use links inside them mapped to tokens.

A span is a run of whole lines of a file (the middle, a whole number of blocks with end tokens
after it) between its prefix and suffix (the context, in the fim layout). Its links say which
middle token declares a name that a later middle token reads (`syntax.def_use`).
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from sdls_model.config import ModelConfig
from sdls_model.layout import pad_middle
from sdls_model.tokenizer import Tokenizer
from sdls_model.train.objectives import fit_context

from ..syntax.def_use import def_use_links
from ..syntax.document import SyntaxDocument


@dataclass(frozen=True)
class Span:
    file: int  # index into the texts it was cut from
    start: int  # character offsets of the middle in the file
    end: int
    context: list[int]
    middle: list[int]  # the middle's tokens, end tokens up to whole blocks
    links: list[tuple[int, int]]  # (declaring token, using token), middle token indices


def token_starts(tok: Tokenizer, ids: list[int]) -> list[int]:
    """Character offset where each token's text starts (from decoding growing prefixes)."""
    return [len(tok.decode(ids[:i])) for i in range(len(ids))]


def token_at(starts: list[int], offset: int) -> int:
    """The token whose text holds character `offset` of the middle."""
    return max(0, bisect.bisect_right(starts, offset) - 1)


def violations(links: list[tuple[int, int]], commit_step: tuple[int, ...] | list[int], block_size: int) -> int:
    """Links whose use was committed before its declaration (blocks run in order, steps within one)."""
    when = lambda i: (i // block_size, commit_step[i])
    return sum(when(use) < when(decl) for decl, use in links)


def cut_span(cfg: ModelConfig, tok: Tokenizer, text: str, a: int, blocks: int, context: int) -> tuple[int, list[int]]:
    """The end of the longest run of whole lines from `a` that fits `blocks` blocks (one end token at
    least), and its tokens."""
    capacity = blocks * cfg.block_size - 1
    b = text.find("\n", a + 1)
    b = len(text) if b < 0 else b
    ids = tok.encode(text[a:b])
    while len(ids) <= capacity and b < len(text):
        nxt = text.find("\n", b + 1)
        nxt = len(text) if nxt < 0 else nxt
        longer = tok.encode(text[a:nxt])
        if len(longer) > capacity:
            break
        b, ids = nxt, longer
    return b, ids


def draw_spans(
    cfg: ModelConfig,
    tok: Tokenizer,
    texts: list[str],
    count: int,
    blocks: int,
    context: int,
    rng: random.Random,
    need_links: bool = True,
    tries: int = 50,
) -> list[Span]:
    """`count` spans from random files (length-weighted); with need_links only spans where the middle
    declares a name it then reads, so that the order matters. Fewer when the texts run out of them."""
    docs: dict[int, SyntaxDocument] = {}
    spans: list[Span] = []
    weights = [len(t) for t in texts]
    for _ in range(count * tries):
        if len(spans) >= count or not texts:
            break
        f = rng.choices(range(len(texts)), weights=weights)[0]
        text = texts[f]
        a = text.rfind("\n", 0, rng.randrange(len(text))) + 1
        b, ids = cut_span(cfg, tok, text, a, blocks, context)
        if not text[a:b].strip() or len(ids) > blocks * cfg.block_size - 1:
            continue
        if f not in docs:
            docs[f] = SyntaxDocument(text, "python")
        starts = token_starts(tok, ids)
        links = [
            (token_at(starts, x.decl_start - a), token_at(starts, x.use_start - a))
            for x in def_use_links(docs[f], a, b)
        ]
        links = [(d, u) for d, u in links if d != u]
        if need_links and not links:
            continue
        window = context * 6
        prefix, suffix = tok.encode(text[max(0, a - window) : a]), tok.encode(text[b : b + window])
        middle = pad_middle(ids, cfg.block_size, cfg.eos_id)
        middle += [cfg.eos_id] * (blocks * cfg.block_size - len(middle))
        spans.append(Span(f, a, b, fit_context(cfg, prefix, suffix, context), middle, links))
    return spans
