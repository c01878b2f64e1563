"""The step loop reads the device at most once per denoising step, for the whole batch: finished
rows, committed positions and end detection are decided on the device and come back in one read.
On a GPU every read is a host sync; on the CPU they are counted (tests/host_reads.py)."""

from __future__ import annotations

import pytest
import torch
from host_reads import count_host_reads

from sdls_model.config import ModelConfig
from sdls_model.engine import DecodeSettings, EditJob, Engine, InfillJob
from sdls_model.tokenizer import train_tokenizer
from sdls_model.transformer import Transformer

CORPUS = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n", "x = [1, 2, 3]\n"] * 10
TEXT = "def add(a, b):\n    return a + b\n\n\nfor i in range(10):\n    print(i)\n"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=300)


def make_engine(tokenizer, **kwargs) -> Engine:
    model = Transformer(ModelConfig.from_name("test-tiny")).init_weights(seed=1, std=0.3)
    return Engine(model, tokenizer, max_context=256, max_new_tokens=64, max_batch=4, n_sessions=2, **kwargs)


def jobs():
    return [
        InfillJob("def add(a, b):\n    return ", "\n", 24, DecodeSettings(threshold=0.5)),
        InfillJob("for i in ", "", 20, DecodeSettings(rule="fixed", tokens_per_step=2), session="doc"),
        InfillJob("x = ", "", 16, DecodeSettings(temperature=1.0, seed=3), single_line=True),
        EditJob(TEXT, 19, 31, marked=[(26, 27)], max_rounds=2, session="doc"),
    ]


@pytest.mark.parametrize("fast_path", [False, True], ids=["plain forward", "FastDecoder (torch ops)"])
def test_at_most_one_host_read_per_step_for_the_whole_batch(tokenizer, fast_path):
    engine = make_engine(tokenizer, fast_path=fast_path)
    steps = []
    with count_host_reads() as reads:
        results = engine.run(jobs(), between_steps=lambda: steps.append(1))
    assert len(steps) >= 8 and all(r.stats.forwards for r in results)
    assert sum(reads.values()) <= len(steps), dict(reads)
    assert engine.counters.host_reads == engine.counters.steps == len(steps)
    if fast_path:
        assert engine.counters.by_path["fast"] > 0  # the fast forward was measured too


def test_doubt_passes_read_once_per_block(tokenizer):
    engine = make_engine(tokenizer)
    with count_host_reads() as reads:
        engine.doubt(TEXT, 0, len(TEXT) - 1, 0.5)
    assert 2 <= sum(reads.values()) == engine.counters.steps


def test_the_counter_sees_the_reads_it_must_bound(tokenizer):
    """The counter is not blind: a per-row host decision inside the step (as the loop used to make)
    is counted, here by counting the reads made from this test's own file."""
    engine = make_engine(tokenizer)
    real = engine.rule.status

    def status_and_peek(row, probs):
        bool((row.seq == engine.cfg.mask_id).any())  # a per-row host decision
        return real(row, probs)

    engine.rule.status = status_and_peek
    steps = []
    with count_host_reads("tests") as peeks, count_host_reads() as reads:
        engine.run(jobs()[:2], between_steps=lambda: steps.append(1))
    assert peeks["__bool__"] > len(steps)  # one per row per step: over the bound
    assert sum(reads.values()) == len(steps)
    with count_host_reads() as reads:
        torch.zeros(3)[torch.tensor([True, False, True])]  # a read outside the engine is not the engine's
    assert not reads
