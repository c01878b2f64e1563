"""The engine's per-block streaming hook (`on_block`): one call per committed block, each text a prefix
of the next, the last one the job's answer; a cancelled job reports no half-decoded block."""

from __future__ import annotations

import itertools

import pytest
import torch

from sdls_model.config import ModelConfig
from sdls_model.engine import CancelToken, DecodeSettings, EditJob, Engine, InfillJob
from sdls_model.tokenizer import train_tokenizer
from sdls_model.transformer import Transformer

CORPUS = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n", "x = [1, 2, 3]\n"] * 10
FIXED = DecodeSettings(rule="fixed", tokens_per_step=1)


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    tokenizer = train_tokenizer(CORPUS, vocab_size=300)
    model = Transformer(ModelConfig.from_name("test-tiny")).init_weights(seed=1, std=0.3)  # block size 8
    return Engine(model, tokenizer, max_context=256, max_new_tokens=64, max_batch=4, n_sessions=2)


def test_each_committed_block_is_reported_once_and_the_last_report_is_the_answer(engine):
    seen: list[str] = []
    job = InfillJob("def add(a, b):\n    return ", "\n", 24, FIXED, on_block=seen.append)
    result = engine.run([job])[0]
    blocks = -(-result.stats.forwards // 8)  # fixed rule, one token per step: 8 forwards per block
    assert len(seen) == blocks >= 1
    assert seen[-1] == result.text
    for earlier, later in itertools.pairwise(seen):
        assert later.startswith(earlier.rstrip("\ufffd"))


def test_batch_mates_get_their_own_reports_and_a_hookless_job_none(engine):
    a: list[str] = []
    jobs = [
        InfillJob("x = ", "", 16, FIXED, on_block=a.append),
        InfillJob("for i in ", "", 16, FIXED),
    ]
    results = engine.run(jobs)
    assert a and a[-1] == results[0].text


def test_a_cancelled_job_reports_only_whole_blocks(engine):
    token = CancelToken()
    seen: list[str] = []

    def first_block_then_cancel(text: str) -> None:
        seen.append(text)
        token.cancel()

    job = InfillJob("def add(a, b):\n    return ", "\n", 40, FIXED, cancel=token, on_block=first_block_then_cancel)
    result = engine.run([job])[0]
    assert result.cancelled
    assert len(seen) == 1  # the job stopped at the next step; no second block was reported
    assert result.stats.forwards <= 9


def test_edit_jobs_report_the_revised_region_block_by_block(engine):
    seen: list[str] = []
    text = "def add(a, b):\n    return a + b\n"
    start = text.index("return")
    job = EditJob(text, start, len(text) - 1, settings=FIXED, max_rounds=0, on_block=seen.append)
    result = engine.run([job])[0]
    assert seen and seen[-1] == result.text
