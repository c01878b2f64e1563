"""Training rows, noise and batches: the layout the engine decodes, and the alignment stage 2 promises."""

import itertools
import random

import pytest
import torch

from sdls_model.config import ModelConfig
from sdls_model.tokenizer import train_tokenizer
from sdls_model.train.objectives import (
    RowPlan,
    build_rows,
    collate,
    continue_row,
    edit_corrupt,
    edit_noise,
    line_row,
    mask_noise,
    span_row,
)

SOURCE = '''import os


def walk(root):
    """Yield every file under root."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            yield os.path.join(dirpath, name)


class Counter:
    def __init__(self):
        self.total = 0

    def add(self, amount=1):
        self.total += amount
        return self.total
'''


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([SOURCE] * 20, vocab_size=360)


@pytest.fixture(scope="module")
def cfg(tok):
    return ModelConfig.from_name("test-tiny", vocab_size=tok.vocab_size)


def test_edit_corrupt_keeps_its_alignment_promise():
    rng = random.Random(0)
    for _ in range(500):
        block = [rng.randrange(6, 50) for _ in range(rng.randint(1, 40))]
        n_edits = rng.randint(0, 12)
        noisy, sources = edit_corrupt(block, n_edits, rng, lambda: rng.randrange(1000, 2000), fill_id=0)
        assert len(noisy) == len(sources) == len(block)
        copied = [(j, s) for j, s in enumerate(sources) if s >= 0]
        assert all(noisy[j] == block[s] for j, s in copied), "a copied token differs from its source"
        assert all(a < b for (_, a), (_, b) in itertools.pairwise(copied)), "copied tokens changed order"
        new = [j for j, s in enumerate(sources) if s < 0]
        assert all(noisy[j] >= 1000 or noisy[j] == 0 for j in new), "a token marked new is an original"
        assert len(new) <= n_edits and len(block) - len(copied) <= n_edits
        if n_edits == 0:
            assert noisy == block and sources == list(range(len(block)))


def test_edit_corruption_shifts_tokens_and_trains_every_position(cfg):
    rng = random.Random(1)
    block = list(range(10, 42))
    shifted = 0
    for _ in range(200):
        noisy, weights = edit_noise(block, t=0.9, cfg=cfg, rng=rng, row_tokens=block, vocab_size=cfg.vocab_size)
        assert len(noisy) == len(block)
        if all(w == 1.0 for w in weights):  # an edited block: loss on every position
            # Some position holds an original token at another index: an insertion or deletion happened.
            shifted += any(x in block and x != block[j] for j, x in enumerate(noisy))
        else:  # a masked block, as in stage 1
            assert all((x == cfg.mask_id) == (w > 0) for x, w in zip(noisy, weights))
    assert shifted > 20


@pytest.mark.parametrize("t,expected_masked", [(0.0, 1), (0.25, 8), (0.5, 16), (1.0, 32)])
def test_mask_noise_masks_a_fraction_t_weighted_by_its_inverse(t, expected_masked):
    block = list(range(100, 132))
    noisy, weights = mask_noise(block, t, mask_id=0, rng=random.Random(0))
    masked = [i for i, x in enumerate(noisy) if x == 0]
    assert len(masked) == expected_masked
    assert all(weights[i] == pytest.approx(32 / expected_masked) for i in masked)
    assert all(weights[i] == 0 and noisy[i] == block[i] for i in range(32) if i not in masked)


def test_fim_rows_are_laid_out_as_the_engine_decodes(cfg, tok):
    rng = random.Random(3)
    for builder, blocks in ((line_row, 1), (span_row, 3)):
        for _ in range(30):
            row = builder(cfg, tok, SOURCE, RowPlan("x", 48, blocks), rng)
            ctx = row.context
            assert ctx[:2] == [cfg.bos_id, cfg.fim_suffix_id] and ctx[-1] == cfg.fim_middle_id and len(ctx) <= 48
            assert len(row.middle) == blocks * cfg.block_size
            end = row.middle.index(cfg.eos_id)  # at least one end token, then only end tokens
            assert set(row.middle[end:]) == {cfg.eos_id}
            assert tok.decode(row.middle[:end]) == row.text_middle
            split = ctx.index(cfg.fim_prefix_id)
            suffix, prefix = tok.decode(ctx[2:split]), tok.decode(ctx[split + 1 : -1])
            assert prefix + row.text_middle + suffix in SOURCE  # the three pieces are adjacent text


def test_continue_rows_have_no_suffix_and_no_end_token_mid_file(cfg, tok):
    rng = random.Random(4)
    long_source = SOURCE * 4
    for _ in range(20):
        row = continue_row(cfg, tok, long_source, RowPlan("continue", 32, 2), rng)
        assert row.context[1:3] == [cfg.fim_suffix_id, cfg.fim_prefix_id]
        assert len(row.middle) == 2 * cfg.block_size
        prefix = tok.decode(row.context[3:-1])
        if cfg.eos_id not in row.middle:
            assert prefix + tok.decode(row.middle) in long_source
        else:  # only when the file ends inside the middle
            assert long_source.endswith(tok.decode(row.middle[: row.middle.index(cfg.eos_id)]))


def test_collate_builds_targets_weights_and_the_block_causal_mask(cfg, tok):
    rng = random.Random(5)
    rows = build_rows(cfg, tok, [SOURCE], RowPlan("span", 40, 2), 3, rng)
    batch = collate(cfg, rows, 1, rng, tok.vocab_size)
    B, T = batch.tokens.shape
    assert batch.mask.shape == (B, 1, T, T)
    for b, row in enumerate(rows):
        c, m = len(row.context), len(row.middle)
        noisy = slice(c + m, c + 2 * m)
        assert batch.tokens[b, :c].tolist() == row.context and batch.tokens[b, c : c + m].tolist() == row.middle
        assert batch.targets[b, noisy].tolist() == row.middle
        assert batch.weights[b, : c + m].sum() == 0 and batch.weights[b, c + 2 * m :].sum() == 0
        carries_loss = batch.weights[b, noisy] > 0
        assert torch.equal(carries_loss, batch.tokens[b, noisy] == cfg.mask_id)
        assert batch.positions[b, noisy].tolist() == list(range(c, c + m))
        mask = batch.mask[b, 0]
        for blk in range(m // cfg.block_size):
            q = c + m + blk * cfg.block_size  # first noisy token of block blk
            clean_start = c + blk * cfg.block_size
            assert mask[q, :clean_start].all(), "a noisy block sees the context and earlier clean blocks"
            assert not mask[q, clean_start : c + m].any(), "a noisy block must not see its own clean copy"
            own = slice(q, q + cfg.block_size)
            assert mask[q, own].all() and mask[q, c + m :].sum() == cfg.block_size
        assert not mask[:c, c:].any(), "the context never sees the middle"
        assert mask[torch.arange(c), torch.arange(c)].all() and not mask[0, 1:c].any(), "context is causal"
    assert batch.loss_norm == sum(len(r.middle) for r in rows)
