"""Packed bfloat16 weights (oneDNN) on a CPU that multiplies bfloat16 natively: the very products of the
plain bfloat16 linear, the same decoding, the bytes the process holds, and the choice per device."""

from __future__ import annotations

import dataclasses
import gc
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sdls_model import packed_weights
from sdls_model.checkpoint import load_checkpoint, scratch_model_dir
from sdls_model.config import ModelConfig
from sdls_model.engine import Engine, InfillJob
from sdls_model.heap import release_freed_memory
from sdls_model.packed_weights import (
    BFloat16PackedLinear,
    onednn_bfloat16_available,
    pack_model,
    packed_weight_bytes,
    resolve_weights,
    weight_bytes,
)
from sdls_model.transformer import Transformer

needs_onednn = pytest.mark.skipif(
    not onednn_bfloat16_available(), reason="needs oneDNN and a CPU with native bfloat16 (AVX512-BF16 or AMX)"
)


def tiny_model(tied: bool = True) -> Transformer:
    cfg = dataclasses.replace(
        ModelConfig(), d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=64, head_dim=8, tie_embeddings=tied
    )
    return Transformer(cfg).init_weights(seed=1).to(torch.bfloat16).eval()


@needs_onednn
def test_a_packed_linear_multiplies_exactly_as_the_plain_bfloat16_linear():
    torch.manual_seed(0)
    lin = nn.Linear(96, 40).to(torch.bfloat16)
    packed = BFloat16PackedLinear(lin)
    for rows in (1, 5, 33):  # any row count, not only the one oneDNN chose the layout for
        x = torch.randn(3, rows, 96).to(torch.bfloat16)
        got = packed(x)
        assert got.shape == (3, rows, 40) and got.dtype == torch.bfloat16
        assert torch.equal(got, F.linear(x, lin.weight.detach(), lin.bias.detach()))
    x = torch.randn(2, 96).to(torch.bfloat16)
    assert not torch.equal(packed(x), F.linear(x, lin.weight.detach() * 1.01, lin.bias.detach()))


def test_only_bfloat16_cpu_matrices_are_packed():
    with pytest.raises(ValueError, match="bfloat16 CPU"):
        BFloat16PackedLinear(nn.Linear(8, 8))


def test_only_the_packed_choices_pack_a_model():
    with pytest.raises(ValueError, match="nothing to pack"):
        pack_model(tiny_model(), "plain")


@needs_onednn
@pytest.mark.parametrize("tied", [True, False])
def test_packing_a_bfloat16_model_keeps_its_logits_and_counts_its_bytes(tied):
    model = tiny_model(tied)
    tokens = torch.randint(0, 64, (2, 9))
    positions = torch.arange(9).expand(2, 9)
    with torch.no_grad():
        before = model.logits(model(tokens, positions))
    assert pack_model(model, "bfloat16") == 2 * 7 + 1  # q, k, v, o, gate, up, down a layer, and the output
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert isinstance(model.embed_tokens, nn.Embedding)  # the table is looked up, not multiplied
    with torch.no_grad():
        after = model.logits(model(tokens, positions))
    assert torch.equal(after, before)
    held = sum(p.numel() * p.element_size() for p in model.parameters()) + packed_weight_bytes(model)
    assert held == weight_bytes(model.cfg, 2, "bfloat16")
    tied_copy = model.cfg.vocab_size * model.cfg.d_model * 2
    assert held == model.cfg.num_parameters() * 2 + (tied_copy if tied else 0)


@needs_onednn
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the resident memory from /proc")
@pytest.mark.parametrize("shape", [(49152, 576), (4864, 896)])
def test_the_packed_size_is_what_the_process_holds(shape):
    w = torch.randn(*shape).to(torch.bfloat16)
    lin = nn.Linear(shape[1], shape[0], bias=False).to(torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(w)
    n = max(2, (128 << 20) // (2 * shape[0] * shape[1]))
    before = _resident_bytes()
    packs = [BFloat16PackedLinear(lin) for _ in range(n)]
    grown = (_resident_bytes() - before) / len(packs)
    assert 0.9 * packs[0].nbytes() < grown < 1.1 * packs[0].nbytes()


def _resident_bytes() -> int:
    gc.collect()
    release_freed_memory()
    status = Path("/proc/self/status").read_text()
    return int(status.split("RssAnon:")[1].split()[0]) * 1024


def scratch_engine(weights: str, **kwargs) -> Engine:
    _cfg, model, tokenizer = load_checkpoint(scratch_model_dir(), dtype=torch.bfloat16)
    return Engine(model, tokenizer, dtype=torch.bfloat16, max_batch=2, max_context=256, weights=weights, **kwargs)


@needs_onednn
def test_packed_bfloat16_weights_decode_what_plain_bfloat16_decodes():
    prompts = [("def add(a, b):\n    return ", "\n"), ("for i in range(10):\n    ", "\n"), ("import os\nx = os.", "\n")]
    jobs = lambda: [InfillJob(p, s, max_new_tokens=12) for p, s in prompts]
    plain, packed = scratch_engine("plain"), scratch_engine("bfloat16")
    assert (plain.describe()["weights"], packed.describe()["weights"]) == ("plain", "bfloat16 packed (oneDNN)")
    assert packed.cache.k.dtype == torch.bfloat16
    texts = lambda results: [r.text for r in results]
    assert texts(packed.run(jobs())) == texts(plain.run(jobs()))


@needs_onednn
def test_the_fast_path_refuses_packed_bfloat16_weights():
    with pytest.raises(ValueError, match=r"fast path.*bfloat16"):
        scratch_engine("bfloat16", fast_path=True)


@pytest.mark.parametrize("available", [True, False])
def test_the_bfloat16_choice_per_device_and_its_errors(available, monkeypatch):
    monkeypatch.delenv("SDLS_CPU_WEIGHTS", raising=False)
    monkeypatch.setattr(packed_weights, "onednn_bfloat16_available", lambda: available)
    assert resolve_weights("auto", "cpu", torch.bfloat16) == ("bfloat16" if available else "plain")
    assert resolve_weights("auto", "cuda", torch.bfloat16) == "plain"
    assert resolve_weights("plain", "cpu", torch.bfloat16) == "plain"
    with pytest.raises(ValueError, match="CPU computing in bfloat16"):
        resolve_weights("bfloat16", "cpu", torch.float32)
    with pytest.raises(ValueError, match="CPU computing in bfloat16"):
        resolve_weights("bfloat16", "cuda", torch.bfloat16)
    monkeypatch.setenv("SDLS_CPU_WEIGHTS", "bfloat16")
    if available:
        assert resolve_weights(None, "cpu", torch.bfloat16) == "bfloat16"
    else:
        with pytest.raises(ValueError, match="native bfloat16"):
            resolve_weights(None, "cpu", torch.bfloat16)
