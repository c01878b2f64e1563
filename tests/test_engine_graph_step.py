"""The product's graph step (engine/graph_step.py): a greedy threshold step run whole on static
buffers commits the same tokens as the eager step. On the CPU the buffers run uncaptured (the same
function); the CUDA test captures real graphs and runs only where CUDA is (tools/gpu_run.sh)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from host_reads import count_host_reads

from sdls_model.config import ModelConfig
from sdls_model.engine import DecodeSettings, Engine, InfillJob
from sdls_model.tokenizer import train_tokenizer
from sdls_model.transformer import Transformer

CORPUS = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n", "x = [1, 2, 3]\n"] * 10
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-only: captures CUDA graphs")


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=300)


def make_engine(tokenizer, device="cpu", end_weight: float = 1.0, **kwargs) -> Engine:
    model = Transformer(ModelConfig.from_name("test-tiny")).init_weights(seed=1, std=0.3)
    with torch.no_grad():  # end_weight > 1: a model that often puts the end ahead of open masks
        model.lm_head.weight[model.cfg.eos_id] *= end_weight
    return Engine(
        model, tokenizer, device=device, dtype=torch.float32, max_context=256, max_new_tokens=64, max_batch=4, **kwargs
    )


def jobs():
    return [
        InfillJob("def add(a, b):\n    return ", "\n", 24, DecodeSettings(threshold=0.3)),
        InfillJob("for i in ", "", 20, DecodeSettings(threshold=0.6), session="doc"),
        InfillJob("x = ", "", 16, DecodeSettings(), single_line=True),
    ]


@pytest.mark.parametrize("confidence", ["prob", "margin", "entropy"])
def test_static_buffer_steps_commit_what_the_eager_steps_commit(tokenizer, confidence):
    static = make_engine(tokenizer, fast_path=True, graph=True)
    eager = make_engine(tokenizer, fast_path=True, graph=False)
    batch = [
        InfillJob(
            j.prefix,
            j.suffix,
            j.max_new_tokens,
            j.settings.__class__(**{**j.settings.__dict__, "confidence": confidence}),
            j.session,
            single_line=j.single_line,
        )
        for j in jobs()
    ]
    got = static.run(batch)
    want = eager.run(batch)
    assert [r.tokens for r in got] == [r.tokens for r in want]
    assert [r.stats.forwards for r in got] == [r.stats.forwards for r in want]
    paths = static.decode_stats()["paths"]
    assert paths["static"] >= 2 and paths["fast"] == 0  # every block step after the first served
    assert static.decode_stats()["graph"]["mode"] == "static buffers, eager"


def test_static_steps_hold_back_ends_as_the_eager_steps_do(tokenizer):
    static = make_engine(tokenizer, end_weight=2.0, fast_path=True, graph=True)
    eager = make_engine(tokenizer, end_weight=2.0, fast_path=True, graph=False)
    outputs = {}
    for in_order in (True, False):
        batch = [
            InfillJob(
                j.prefix,
                j.suffix,
                j.max_new_tokens,
                replace(j.settings, ends_in_order=in_order),
                j.session,
                single_line=j.single_line,
            )
            for j in jobs()
        ]
        got, want = static.run(batch), eager.run(batch)
        assert [r.tokens for r in got] == [r.tokens for r in want]
        assert [r.stats.forwards for r in got] == [r.stats.forwards for r in want]
        outputs[in_order] = [r.tokens for r in want]
    assert static.decode_stats()["paths"]["static"] >= 2
    assert outputs[True] != outputs[False]  # the premise: this model's ends were held back


def test_static_steps_read_once_and_leave_sampling_jobs_to_the_eager_rule(tokenizer):
    engine = make_engine(tokenizer, fast_path=True, graph=True)
    # 32 tokens: the sampling row outlives the greedy ones, so every step of this batch has it.
    hot = InfillJob("x = ", "", 32, DecodeSettings(temperature=1.0, seed=2))
    with count_host_reads() as reads:
        results = engine.run([*jobs(), hot])
    assert results[-1].stats.forwards >= max(r.stats.forwards for r in results[:-1])  # the premise
    assert sum(reads.values()) == engine.counters.steps
    assert engine.decode_stats()["paths"]["static"] == 0  # a sampling row keeps its batch eager
    engine.run(jobs())
    assert engine.decode_stats()["paths"]["static"] >= 2


@pytest.mark.gpu
@needs_cuda
def test_cuda_graph_steps_commit_what_eager_cuda_steps_commit(tokenizer):
    graph = make_engine(tokenizer, device="cuda", graph=True)
    eager = make_engine(tokenizer, device="cuda", graph=False)
    got, want = graph.run(jobs()), eager.run(jobs())
    assert [r.tokens for r in got] == [r.tokens for r in want]
    stats = graph.decode_stats()["graph"]
    assert stats["fallback"] is None and stats["captured"] >= 1 and stats["replays"] >= 2, stats
    assert graph.decode_stats()["paths"]["graph"] >= 2


@pytest.mark.gpu
@needs_cuda
def test_cuda_step_loop_syncs_once_per_step(tokenizer):
    """On the GPU the bound is checked by CUDA itself: every synchronizing call warns."""
    import warnings

    engine = make_engine(tokenizer, device="cuda", graph=True)
    engine.run(jobs())  # capture first (capture itself synchronizes)
    steps_before = engine.counters.steps
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            engine.run(jobs())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= engine.counters.steps - steps_before + 2, [str(w.message) for w in syncs[:5]]


def test_the_workers_stats_say_which_path_the_steps_took(tokenizer):
    from sdls.worker.scheduler import Scheduler

    cpu = Scheduler(make_engine(tokenizer))
    assert cpu.lane_stats()["decode"]["graph"]["mode"] == "off"
    assert "no fast decoder" in cpu.lane_stats()["decode"]["graph"]["reason"]
    engine = make_engine(tokenizer, fast_path=True, graph=True)
    engine.run(jobs())
    decode = Scheduler(engine).lane_stats()["decode"]
    assert decode["graph"]["uncaptured"] == decode["paths"]["static"] >= 2
    assert decode["host_reads"] == decode["steps"]
