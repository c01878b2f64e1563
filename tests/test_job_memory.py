"""The per-job memory estimate the worker's budget refuses by (sdls_model.job_memory): it grows with
what a job may make the engine hold (context, middle, block size) and stops where the engine stops."""

from __future__ import annotations

from sdls_model.config import ModelConfig
from sdls_model.job_memory import budget_problem, job_lengths, job_need_bytes
from sdls_model.jobs import DecodeSettings, EditJob, InfillJob

CFG = ModelConfig(vocab_size=151936, d_model=1536, n_layers=28, n_heads=12, n_kv_heads=2, ffn_size=8960)


def need(job, max_context=1024, max_new_tokens=512) -> int:
    return job_need_bytes(CFG, job, max_context, max_new_tokens, element_size=2)


def test_the_estimate_grows_with_block_size_context_and_middle():
    base = InfillJob(prefix="x = 1\n" * 50, max_new_tokens=32)
    wider = InfillJob(prefix=base.prefix, max_new_tokens=32, settings=DecodeSettings(block_size=512))
    longer = InfillJob(prefix=base.prefix * 4, max_new_tokens=32)
    more = InfillJob(prefix=base.prefix, max_new_tokens=256)
    assert need(base) < need(longer) and need(base) < need(more) and need(base) < need(wider)
    assert need(wider) > 5 * need(base)  # a 512-token block's logits over a 150k vocabulary dominate


def test_the_estimate_stops_where_the_engine_stops():
    at_limit = InfillJob(prefix="x" * 1024, max_new_tokens=512)
    huge = InfillJob(prefix="x" * 10_000_000, max_new_tokens=4096)  # windowed to max_context, capped at 512 new
    assert need(huge) == need(at_limit)
    assert job_lengths(CFG, huge, 1024, 512) == (1024 + 512 + 32, 32)


def test_an_edit_counts_its_region_as_the_middle_and_four_bytes_a_character_at_most():
    text = "a = b(c)\n" * 10
    small = EditJob(text=text, start=0, end=9)
    whole = EditJob(text=text, start=0, end=len(text))
    assert need(small) < need(whole)
    assert job_lengths(CFG, EditJob(text="\U0001f600" * 10, start=0, end=10), 1024, 512)[0] == 64 + 32


def test_the_budget_refusal_says_what_and_where_to_change_it():
    assert budget_problem(10, 10) is None
    message = budget_problem(3 * 1024 * 1024, 1024 * 1024)
    assert "about 3 MB" in message and "budget of 1 MB" in message and "--memory-budget-mb" in message
