"""Training rows and noise: what the model sees, laid out exactly as the engine decodes it.

A row is [context | clean middle | noisy middle] (`layout.training_layout`): the context is
`fim_context(prefix, suffix)`, the middle is cut into blocks, and the noisy copy of each block is
what the model must restore. Three kinds of rows (`RowPlan.kind`):
- "line": fill-in-the-middle of (part of) one line or a few lines, padded with end tokens: what
  inline completion asks for, and how the model learns where an infill stops;
- "span": a longer multi-line middle between a prefix and a suffix;
- "continue": no suffix, the middle is the next whole blocks of the file (no end token unless the
  file ends): the cheapest way to learn the language, since every middle token carries loss.
Noise:
- stage 1 (`mask_noise`): per block t ~ U(0, 1), a fraction t of the noisy tokens masked, loss on
  masked positions weighted 1/t (the masked-diffusion bound);
- stage 2 (`edit_noise`): half the blocks as in stage 1, half corrupted by insertions, deletions and
  substitutions (count tied to t) plus a few masks, with loss on every position: the model learns
  to restore the original block, so the engine can find and fix wrong tokens.
All sampling is driven by one `random.Random`, so a seed reproduces a batch exactly.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..layout import attention_mask, fim_context, pad_middle, training_layout
from ..tokenizer import SPECIAL_TOKENS, Tokenizer

EDIT_FRACTION = 0.25  # at t = 1 a stage-2 block gets ~ a quarter of its tokens edited
PAD_BID = 10**9  # padding queries see every clean token (never an empty softmax row)
ROW_KINDS = ("line", "span", "continue")


@dataclass(frozen=True)
class RowPlan:
    """The shape shared by every row of a batch: one kind, a context budget, a middle length."""

    kind: str
    context: int  # at most this many context tokens (BOS and markers included)
    middle_blocks: int


@dataclass
class Row:
    context: list[int]
    middle: list[int]  # a whole number of blocks
    text_middle: str  # the middle as text ("" for continue rows built from tokens)


# -- rows -------------------------------------------------------------------------------------


def fit_context(cfg: ModelConfig, prefix: list[int], suffix: list[int], budget: int) -> list[int]:
    """Keep the end of the prefix and the start of the suffix (the text nearest the cursor)."""
    room = budget - 4 if cfg.bos_id is not None else budget - 3
    suffix_take = min(len(suffix), max(room // 4, room - len(prefix)))
    prefix_take = min(len(prefix), room - suffix_take)
    return fim_context(cfg, prefix[len(prefix) - prefix_take :], suffix[:suffix_take])


def _line_bounds(text: str, rng: random.Random, tries: int = 8) -> tuple[int, int] | None:
    """A non-blank line: (start, end) char offsets, end excluding the newline."""
    for _ in range(tries):
        pos = rng.randrange(len(text))
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        if text[start:end].strip():
            return start, end
    return None


def line_row(cfg: ModelConfig, tok: Tokenizer, text: str, plan: RowPlan, rng: random.Random) -> Row | None:
    """Infill the rest of a line (from its start, its indentation, or a random character),
    sometimes with one or two more lines: inline completion's request."""
    bounds = _line_bounds(text, rng)
    if bounds is None:
        return None
    start, end = bounds
    indent = start + len(text[start:end]) - len(text[start:end].lstrip())
    r = rng.random()
    cut = start if r < 0.25 else indent if r < 0.6 else rng.randrange(indent, end)
    for _ in range(rng.choice((0, 0, 0, 1, 2))):
        nxt = text.find("\n", end + 1)
        end = len(text) if nxt < 0 else nxt
    return _fim_row(cfg, tok, text, cut, end, plan)


def span_row(cfg: ModelConfig, tok: Tokenizer, text: str, plan: RowPlan, rng: random.Random) -> Row | None:
    """Infill a multi-line span: from a line start (or anywhere) to a line end (or anywhere)."""
    capacity_chars = plan.middle_blocks * cfg.block_size * 3
    a = rng.randrange(len(text))
    if rng.random() < 0.7:
        a = text.rfind("\n", 0, a) + 1
    b = min(len(text), a + rng.randint(1, capacity_chars))
    if rng.random() < 0.7:
        nl = text.find("\n", b)
        b = len(text) if nl < 0 else nl
    return _fim_row(cfg, tok, text, a, b, plan)


def _fim_row(cfg: ModelConfig, tok: Tokenizer, text: str, a: int, b: int, plan: RowPlan) -> Row | None:
    window = plan.context * 6  # chars: generous for any tokenizer worth using
    capacity = plan.middle_blocks * cfg.block_size - 1  # one end token at least
    middle_text = text[a:b]
    middle = tok.encode(middle_text)
    while len(middle) > capacity:  # too long: drop trailing lines, then trailing characters
        nl = middle_text.rstrip("\n").rfind("\n")
        middle_text = middle_text[:nl] if nl > 0 else middle_text[: len(middle_text) * capacity // len(middle)]
        middle = tok.encode(middle_text)
    b = a + len(middle_text)
    prefix = tok.encode(text[max(0, a - window) : a])
    suffix = tok.encode(text[b : b + window])
    padded = pad_middle(middle, cfg.block_size, cfg.eos_id)
    padded += [cfg.eos_id] * (plan.middle_blocks * cfg.block_size - len(padded))
    return Row(fit_context(cfg, prefix, suffix, plan.context), padded, middle_text)


def continue_row(cfg: ModelConfig, tok: Tokenizer, text: str, plan: RowPlan, rng: random.Random) -> Row | None:
    """No suffix: the middle is the next whole blocks after a line start; end tokens only at end of file."""
    m = plan.middle_blocks * cfg.block_size
    cut = text.rfind("\n", 0, rng.randrange(len(text))) + 1
    prefix = tok.encode(text[max(0, cut - plan.context * 6) : cut])
    rest = tok.encode(text[cut : cut + m * 8])
    if not rest:
        return None
    if len(rest) >= m:
        middle = rest[:m]
    else:
        middle = pad_middle(rest, cfg.block_size, cfg.eos_id)
        if len(middle) > m:
            middle = (rest + [cfg.eos_id])[:m]
        middle += [cfg.eos_id] * (m - len(middle))
    return Row(fit_context(cfg, prefix, [], plan.context), middle, "")


ROW_BUILDERS = {"line": line_row, "span": span_row, "continue": continue_row}


def build_rows(
    cfg: ModelConfig,
    tok: Tokenizer,
    texts: list[str],
    plan: RowPlan,
    count: int,
    rng: random.Random,
    cum_lengths: list[int] | None = None,
) -> list[Row]:
    """`count` rows of one plan from random texts (length-weighted: long files give more rows).
    Pass `cum_lengths` (running total of the text lengths) to draw in O(log n) on a large corpus."""
    if cum_lengths is None:
        cum_lengths = list(itertools.accumulate(len(t) for t in texts))
    rows: list[Row] = []
    while len(rows) < count:
        text = rng.choices(texts, cum_weights=cum_lengths)[0]
        row = ROW_BUILDERS[plan.kind](cfg, tok, text, plan, rng)
        if row is not None:
            rows.append(row)
    return rows


# -- noise ------------------------------------------------------------------------------------


def sample_t(rng: random.Random) -> float:
    return rng.random()


def mask_noise(block: list[int], t: float, mask_id: int, rng: random.Random) -> tuple[list[int], list[float]]:
    """Mask k = max(1, round(t * L)) of the L tokens: noisy tokens and per-position loss weights.

    The weight is 1 / t with t read as the fraction actually masked (L / k): the same bound as
    independent masking, without the huge weights of a tiny t that masks one token of a block.
    """
    k = max(1, round(t * len(block)))
    chosen = set(rng.sample(range(len(block)), k))
    weight = len(block) / k
    noisy = [mask_id if i in chosen else x for i, x in enumerate(block)]
    return noisy, [weight if i in chosen else 0.0 for i in range(len(block))]


def edit_corrupt(
    block: list[int], n_edits: int, rng: random.Random, draw_token, fill_id: int
) -> tuple[list[int], list[int]]:
    """Apply `n_edits` random insertions, deletions and substitutions to `block`.

    Returns (noisy, sources): noisy has len(block) tokens (cut at the end, or filled with
    `fill_id`); sources[j] is the index in `block` that noisy[j] was copied from, or -1 for a
    token that is new (inserted, substituted or fill). The promise tests rely on: every copied
    token is equal to its source, and sources of copied tokens strictly increase (order kept).
    The training target is always `block` itself: the model restores every position.
    """
    work = [(x, i) for i, x in enumerate(block)]
    for _ in range(n_edits):
        op = rng.choice(("insert", "delete", "substitute"))
        if op == "insert":
            work.insert(rng.randrange(len(work) + 1), (draw_token(), -1))
        elif op == "delete" and work:
            del work[rng.randrange(len(work))]
        elif work:
            j = rng.randrange(len(work))
            work[j] = (draw_token(), -1)
    work = work[: len(block)] + [(fill_id, -1)] * (len(block) - len(work))
    return [x for x, _ in work], [s for _, s in work]


def edit_noise(
    block: list[int], t: float, cfg: ModelConfig, rng: random.Random, row_tokens: list[int], vocab_size: int
) -> tuple[list[int], list[float]]:
    """Stage 2: half the blocks are masked as in stage 1; the others are edited (and lightly
    masked) and every position is trained to its original token."""
    if rng.random() < 0.5:
        return mask_noise(block, t, cfg.mask_id, rng)
    first_plain = len(SPECIAL_TOKENS)

    def draw_token() -> int:
        # A plausible confusion half the time (a token of the same row), any token otherwise.
        if row_tokens and rng.random() < 0.5:
            return rng.choice(row_tokens)
        return rng.randrange(first_plain, vocab_size)

    n_edits = max(1, round(t * EDIT_FRACTION * len(block)))
    noisy, _ = edit_corrupt(block, n_edits, rng, draw_token, cfg.mask_id)
    noisy = [cfg.mask_id if rng.random() < t / 2 else x for x in noisy]
    return noisy, [1.0] * len(block)


# -- batches ----------------------------------------------------------------------------------


@dataclass
class Batch:
    tokens: torch.Tensor  # (B, T) long
    positions: torch.Tensor  # (B, T) long
    bids: torch.Tensor  # (B, T) long, block ids (layout.py)
    noisy: torch.Tensor  # (B, T) bool, the noisy stream
    valid: torch.Tensor  # (B, T) bool, False on padding
    targets: torch.Tensor  # (B, T) long, the clean token at noisy positions (else 0)
    weights: torch.Tensor  # (B, T) float, loss weight per position (0 where no loss)
    loss_norm: float  # divide the weighted loss sum by this (noisy middle tokens)
    bidirectional: bool = False

    @property
    def mask(self) -> torch.Tensor:
        """(B, 1, T, T) bool, True where a query may attend to a key; built where the batch lives,
        so only (B, T) tensors cross to the GPU."""
        return attention_mask(self.bids, self.noisy, self.bids, self.noisy, self.valid, self.bidirectional)

    def to(self, device) -> Batch:
        move = lambda x: x.to(device, non_blocking=True)
        return Batch(
            move(self.tokens),
            move(self.positions),
            move(self.bids),
            move(self.noisy),
            move(self.valid),
            move(self.targets),
            move(self.weights),
            self.loss_norm,
            self.bidirectional,
        )

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.numel())


BlockNoise = Callable[[int, int, list[int], random.Random], tuple[list[int], list[float]]]


def collate(
    cfg: ModelConfig,
    rows: list[Row],
    stage: int,
    rng: random.Random,
    vocab_size: int,
    noise: BlockNoise | None = None,
) -> Batch:
    """Lay rows out as [context | clean middle | noisy middle], noise the noisy copy, pad to one length.

    `noise(row_index, block_start, block, rng) -> (noisy block, loss weights)` replaces the stage's
    noise (the order stage masks along kept trajectories)."""
    bs = cfg.block_size
    tokens, positions, bids, noisy_flags, targets, weights = [], [], [], [], [], []
    for r, row in enumerate(rows):
        c, m = len(row.context), len(row.middle)
        pos, bid, noisy = training_layout(c, m, bs)
        noisy_middle, w = [], []
        for b0 in range(0, m, bs):
            block = row.middle[b0 : b0 + bs]
            if noise is not None:
                nb, wb = noise(r, b0, block, rng)
            elif stage == 1:
                nb, wb = mask_noise(block, sample_t(rng), cfg.mask_id, rng)
            else:
                nb, wb = edit_noise(block, sample_t(rng), cfg, rng, row.middle, vocab_size)
            noisy_middle += nb
            w += wb
        tokens.append(row.context + row.middle + noisy_middle)
        positions.append(pos)
        bids.append(bid)
        noisy_flags.append(noisy)
        targets.append([0] * (c + m) + row.middle)
        weights.append([0.0] * (c + m) + w)
    T = max(len(t) for t in tokens)
    valid = [[True] * len(t) + [False] * (T - len(t)) for t in tokens]
    pad = lambda seqs, v: [s + [v] * (T - len(s)) for s in seqs]
    noisy_count = sum(len(r.middle) for r in rows)
    return Batch(
        torch.tensor(pad(tokens, cfg.eos_id)),
        torch.tensor(pad(positions, 0)),
        torch.tensor(pad(bids, PAD_BID)),
        torch.tensor(pad(noisy_flags, False)),
        torch.tensor(valid),
        torch.tensor(pad(targets, 0)),
        torch.tensor(pad(weights, 0.0)),
        float(noisy_count),
        cfg.attention == "bidirectional",
    )


def prediction_rows(batch: Batch) -> torch.Tensor:
    """(B, T): the row whose output predicts each position under a logit shift. A noisy token that
    starts its block is predicted by the clean token before it (at the index equal to that token's
    position: the context and the clean middle are laid out position by position), any other noisy
    token by the noisy token before it, as the engine reads them."""
    index = torch.arange(batch.tokens.shape[1], device=batch.tokens.device).expand_as(batch.tokens)
    return torch.where(batch.positions == batch.bids, batch.positions - 1, index - 1).clamp(min=0)


def diffusion_loss(model, batch: Batch) -> torch.Tensor:
    """Weighted cross-entropy over the positions that carry loss; logits only where needed."""
    hidden = model(batch.tokens, batch.positions, batch.mask)  # (B, T, d)
    where = batch.weights > 0  # (B, T)
    if model.cfg.logit_shift:  # row i - 1 predicts token i (an AR head keeps its meaning)
        b, t = where.nonzero(as_tuple=True)
        picked = hidden[b, prediction_rows(batch)[b, t]]
    else:
        picked = hidden[where]
    logits = model.logits(picked).float()  # (N, V)
    ce = torch.nn.functional.cross_entropy(logits, batch.targets[where], reduction="none")  # (N,)
    return (ce * batch.weights[where]).sum() / batch.loss_norm
