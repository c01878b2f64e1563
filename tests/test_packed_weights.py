"""Packed float16 weights (FBGEMM) on the CPU: the same products within float16 rounding, the same
decoding, the float32 matrices freed, and the choice per device with clear errors."""

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
from sdls_model.bench import random_config
from sdls_model.checkpoint import load_checkpoint, scratch_model_dir
from sdls_model.config import ModelConfig
from sdls_model.engine import Engine, InfillJob
from sdls_model.heap import release_freed_memory
from sdls_model.packed_weights import (
    HalfEmbedding,
    PackedLinear,
    fbgemm_float16_available,
    pack_linears,
    pack_model,
    packed_matrix_bytes,
    packed_weight_bytes,
    resolve_weights,
)
from sdls_model.roofline import step_bytes
from sdls_model.tokenizer import Tokenizer
from sdls_model.transformer import Transformer

needs_fbgemm = pytest.mark.skipif(not fbgemm_float16_available(), reason="this torch build has no FBGEMM float16")


@needs_fbgemm
def test_a_packed_linear_is_the_linear_of_its_float16_rounded_weights():
    torch.manual_seed(0)
    lin = nn.Linear(96, 40)
    x = torch.randn(3, 5, 96)
    packed = PackedLinear(lin)
    rounded = F.linear(x, lin.weight.detach().half().float(), lin.bias.detach())
    got = packed(x)
    assert got.shape == (3, 5, 40) and got.dtype == torch.float32
    assert torch.allclose(got, rounded, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, F.linear(x, lin.weight.detach() * 1.01, lin.bias.detach()), atol=1e-3)


def test_only_float32_cpu_matrices_are_packed():
    with pytest.raises(ValueError, match="float32 CPU"):
        PackedLinear(nn.Linear(8, 8).to(torch.bfloat16))


def tiny_model() -> Transformer:
    cfg = dataclasses.replace(ModelConfig(), d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=64, head_dim=8)
    return Transformer(cfg).init_weights(seed=1)


@needs_fbgemm
def test_packing_a_model_replaces_every_matrix_and_frees_its_float32_copy():
    model = tiny_model()
    tokens = torch.randint(0, 64, (2, 9))
    positions = torch.arange(9).expand(2, 9)
    with torch.no_grad():
        before = model.logits(model(tokens, positions))
    count = pack_linears(model)
    assert count == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the output projection
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    # Left as float32 parameters: the embedding table (the input side reads it) and the norms.
    cfg = model.cfg
    assert sum(p.numel() for p in model.parameters()) == cfg.vocab_size * cfg.d_model + (2 * cfg.n_layers + 1) * 32
    assert packed_weight_bytes(model) == sum(
        packed_matrix_bytes(m.out_features, m.in_features) for m in model.modules() if isinstance(m, PackedLinear)
    )
    with torch.no_grad():
        after = model.logits(model(tokens, positions))
    assert (after - before).abs().max() < 1e-2 * before.abs().max()


@needs_fbgemm
def test_matrices_packed_side_by_side_each_land_where_their_linear_was(monkeypatch):
    # Packing runs on torch's threads; every PackedLinear must be its own Linear's product, at its place.
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    model = tiny_model()
    linears = {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    inputs = {name: torch.randn(4, module.in_features) for name, module in linears.items()}
    with torch.no_grad():
        expected = {name: linears[name](x) for name, x in inputs.items()}
    assert pack_linears(model) == len(linears)
    packed = dict(model.named_modules())
    for name, x in inputs.items():
        assert isinstance(packed[name], PackedLinear)
        with torch.no_grad():
            got = packed[name](x)
        assert (got - expected[name]).abs().max() <= 1e-2 * expected[name].abs().max(), name


@needs_fbgemm
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the resident memory from /proc")
@pytest.mark.parametrize("shape", [(16384, 32), (8192, 600), (1024, 4100)])  # output dims a multiple of 64
def test_the_packed_size_counts_fbgemms_padding_as_the_process_holds_it(shape):
    """The bytes sdls reports for a packed matrix are those the process really holds: FBGEMM pads the
    input dimension to 512 (32 -> 512 is 16x). (Its output block, 16 on AVX2, may be wider elsewhere:
    these output dimensions are a multiple of either.)"""
    n = max(2, (64 << 20) // packed_matrix_bytes(*shape))
    w = torch.randn(*shape)
    before = _resident_bytes()
    packs = [torch.ops.quantized.linear_prepack_fp16(w, None) for _ in range(n)]
    grown = (_resident_bytes() - before) / len(packs)
    assert 0.9 * packed_matrix_bytes(*shape) < grown < 1.1 * packed_matrix_bytes(*shape)
    assert grown > 1.1 * 2 * shape[0] * shape[1]  # more than the unpadded float16 bytes


def _resident_bytes() -> int:
    gc.collect()
    release_freed_memory()
    status = Path("/proc/self/status").read_text()
    return int(status.split("RssAnon:")[1].split()[0]) * 1024


@needs_fbgemm
def test_packing_the_whole_model_holds_the_embedding_table_as_float16_too():
    model = tiny_model()
    table = model.embed_tokens.weight.detach().clone()
    tokens = torch.randint(0, 64, (2, 9))
    positions = torch.arange(9).expand(2, 9)
    with torch.no_grad():
        before = model.logits(model(tokens, positions))
    assert pack_model(model) == 2 * 7 + 1 + 1
    assert isinstance(model.embed_tokens, HalfEmbedding) and model.embed_tokens.table.dtype == torch.float16
    cfg = model.cfg
    assert sum(p.numel() for p in model.parameters()) == (2 * cfg.n_layers + 1) * 32  # the norms alone
    rows = model.embed_tokens(tokens)
    assert rows.dtype == torch.float32 and torch.equal(rows, table.half().float()[tokens])
    with torch.no_grad():
        after = model.logits(model(tokens, positions))
    assert (after - before).abs().max() < 1e-2 * before.abs().max()


def test_the_choice_per_device_and_its_errors(monkeypatch):
    monkeypatch.delenv("SDLS_CPU_WEIGHTS", raising=False)
    monkeypatch.setattr(packed_weights, "onednn_bfloat16_available", lambda: False)  # tests/test_packed_bfloat16.py
    assert resolve_weights("auto", "cpu", torch.bfloat16) == "plain"  # bfloat16 already reads 2 bytes
    assert resolve_weights("plain", "cpu", torch.float32) == "plain"
    assert resolve_weights(None, "cpu", torch.float32) == ("float16" if fbgemm_float16_available() else "plain")
    with pytest.raises(ValueError, match="not one of"):
        resolve_weights("int3", "cpu", torch.float32)
    with pytest.raises(ValueError, match="CPU computing in float32"):
        resolve_weights("float16", "cpu", torch.bfloat16)
    monkeypatch.setenv("SDLS_CPU_WEIGHTS", "plain")
    assert resolve_weights(None, "cpu", torch.float32) == "plain"
    monkeypatch.setenv("SDLS_CPU_WEIGHTS", "bogus")
    with pytest.raises(ValueError, match="SDLS_CPU_WEIGHTS"):
        resolve_weights(None, "cpu", torch.float32)


def scratch_engine(weights: str, **kwargs) -> Engine:
    _cfg, model, tokenizer = load_checkpoint(scratch_model_dir(), dtype=torch.float32)
    return Engine(model, tokenizer, dtype=torch.float32, max_batch=2, max_context=256, weights=weights, **kwargs)


@needs_fbgemm
def test_packed_weights_decode_what_plain_float32_decodes():
    prompts = [("def add(a, b):\n    return ", "\n"), ("for i in range(10):\n    ", "\n"), ("import os\nx = os.", "\n")]
    jobs = lambda: [InfillJob(p, s, max_new_tokens=12) for p, s in prompts]
    plain, packed = scratch_engine("plain"), scratch_engine("float16")
    assert (plain.describe()["weights"], packed.describe()["weights"]) == ("plain", "float16 packed (FBGEMM)")
    ids = lambda results: [r.text for r in results]
    assert ids(packed.run(jobs())) == ids(plain.run(jobs()))


@needs_fbgemm
def test_beside_packed_weights_the_cache_is_bfloat16_and_read_back_as_float32():
    plain, packed = scratch_engine("plain"), scratch_engine("float16")
    assert (plain.cache.k.dtype, packed.cache.k.dtype) == (torch.float32, torch.bfloat16)
    assert packed.cache.nbytes() * 2 == plain.cache.nbytes()
    assert (plain.describe()["cache_dtype"], packed.describe()["cache_dtype"]) == ("float32", "bfloat16")
    # The context a job leaves in its slot is the plain engine's, rounded to bfloat16: written, not lost.
    job = lambda: [InfillJob("def add(a, b):\n    return ", "\n", max_new_tokens=4)]
    plain.run(job()), packed.run(job())
    k_plain, k_packed = plain.cache.k[:, 0, :, :8], packed.cache.k[:, 0, :, :8]
    assert k_plain.abs().sum() > 0
    torch.testing.assert_close(k_packed.float(), k_plain.to(torch.bfloat16).float(), rtol=0.02, atol=0.02)


@needs_fbgemm
def test_the_fast_path_refuses_packed_weights():
    with pytest.raises(ValueError, match="fast path"):
        scratch_engine("float16", fast_path=True)


def test_the_engine_built_from_a_folder_takes_the_products_choice(monkeypatch):
    monkeypatch.delenv("SDLS_CPU_WEIGHTS", raising=False)
    engine = Engine.from_dir(scratch_model_dir(), dtype="float32", max_context=128)
    assert engine.weights == resolve_weights("auto", "cpu", torch.float32)
    monkeypatch.setenv("SDLS_CPU_WEIGHTS", "plain")
    assert Engine.from_dir(scratch_model_dir(), dtype="float32", max_context=128).weights == "plain"


def test_the_roofline_counts_packed_matrices_at_two_bytes():
    cfg = random_config("qwen2.5-0.5b", Tokenizer.from_file(scratch_model_dir() / "tokenizer.json"))
    kv = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * 1024
    assert step_bytes(cfg, 1024, 4, 2) == cfg.num_parameters() * 2 + kv * 4  # float16 matrices, float32 cache
    assert step_bytes(cfg, 1024, 4, 2, 2) == (cfg.num_parameters() + kv) * 2  # and a bfloat16 cache
    assert step_bytes(cfg, 1024, 4) == (cfg.num_parameters() + kv) * 4


def test_a_worker_storing_its_weights_otherwise_has_its_own_socket(monkeypatch):
    from sdls.worker.paths import worker_key

    monkeypatch.delenv("SDLS_CPU_WEIGHTS", raising=False)
    default = worker_key(None, "cpu", 1024, "auto")
    monkeypatch.setenv("SDLS_CPU_WEIGHTS", "auto")
    assert worker_key(None, "cpu", 1024, "auto") == default  # auto is the default: the same worker
    monkeypatch.setenv("SDLS_CPU_WEIGHTS", "plain")
    assert worker_key(None, "cpu", 1024, "auto") != default
