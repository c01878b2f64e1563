"""Each external loader on a tiny random checkpoint written in that format's exact on-disk layout."""

from __future__ import annotations

import json

import pytest
import torch
from fixtures_checkpoints import edit_json_file, special_id, write_dream, write_llada, write_open_dcoder

from sdls_model.checkpoint import CheckpointError, load_checkpoint, validate_checkpoint

torch.set_num_threads(1)
SAMPLE = [5, 17, 250, 3, 99, 0, 42, 140, 8]


def same_logits(a, b) -> bool:
    x, pos = torch.tensor([SAMPLE]), torch.arange(len(SAMPLE))[None]
    with torch.no_grad():
        return torch.equal(a.logits(a(x, pos)), b.logits(b(x, pos)))


def check_cfg(cfg, **expected) -> None:
    got = {k: getattr(cfg, k) for k in expected}
    assert got == expected


QWEN_FACTS = dict(
    vocab_size=320,
    d_model=64,
    n_layers=2,
    n_heads=4,
    n_kv_heads=2,
    ffn_size=96,
    rope_theta=50000.0,
    qkv_bias=True,
    norm_eps=1e-6,
    max_seq_len=2048,
    attention="bidirectional",
    infill_layout="in_place",
    bos_id=None,
    fim_prefix_id=None,
    fim_suffix_id=None,
    fim_middle_id=None,
)


@pytest.mark.parametrize("tie,shards", [(False, 1), (True, 3)])
def test_dream(tmp_path, tie, shards):
    source = write_dream(tmp_path / "dream", tie=tie, shards=shards)
    cfg, model, tok = load_checkpoint(tmp_path / "dream")
    eos = special_id("<|endoftext|>")
    check_cfg(
        cfg,
        **QWEN_FACTS,
        tie_embeddings=tie,
        logit_shift=True,
        mask_id=special_id("<|mask|>"),
        eos_id=eos,
        pad_id=eos,
        extra_stop_ids=[],
    )
    assert same_logits(model, source)
    assert (model.lm_head.weight is model.embed_tokens.weight) == tie
    assert tok.token_to_id("<|mask|>") == cfg.mask_id


def test_dream_mask_from_tokenizer_and_stops_from_generation_config(tmp_path):
    write_dream(tmp_path / "dream", with_mask_id=False)
    (tmp_path / "dream" / "generation_config.json").write_text(
        json.dumps({"eos_token_id": [special_id("<|endoftext|>"), special_id("<|im_end|>")]})
    )
    cfg, _, _ = load_checkpoint(tmp_path / "dream")
    assert cfg.mask_id == special_id("<|mask|>")
    assert cfg.extra_stop_ids == [special_id("<|im_end|>")]


def test_qwen2_exports_may_carry_harmless_extras(tmp_path):
    """RoPE inv_freq buffers (old exports) and a tied head saved anyway are skipped, not loaded."""
    from safetensors.torch import load_file, save_file

    source = write_dream(tmp_path / "dream", tie=True)
    path = tmp_path / "dream" / "model.safetensors"
    tensors = load_file(str(path))
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    tensors["lm_head.weight"] = torch.zeros_like(tensors["model.embed_tokens.weight"])
    save_file(tensors, str(path))
    _, model, _ = load_checkpoint(tmp_path / "dream")
    assert same_logits(model, source)


@pytest.mark.parametrize("shards", [1, 2])
def test_open_dcoder(tmp_path, shards):
    source = write_open_dcoder(tmp_path / "odc", shards=shards)
    cfg, model, _ = load_checkpoint(tmp_path / "odc")
    check_cfg(
        cfg,
        **QWEN_FACTS,
        tie_embeddings=True,
        logit_shift=True,
        mask_id=special_id("<M>"),
        eos_id=special_id("<|endoftext|>"),
    )
    assert same_logits(model, source)


def test_open_dcoder_config_overrides(tmp_path):
    write_open_dcoder(tmp_path / "odc")
    edit_json_file(
        tmp_path / "odc" / "config.json",
        lambda c: c.update(sdls_logit_shift=False, mask_token_id=special_id("<|mask|>")),
    )
    cfg, _, _ = load_checkpoint(tmp_path / "odc")
    assert (cfg.logit_shift, cfg.mask_id) == (False, special_id("<|mask|>"))


def test_open_dcoder_without_any_mask_token_is_rejected(tmp_path):
    write_open_dcoder(tmp_path / "odc")
    (tmp_path / "odc" / "tokenizer_config.json").unlink()
    from tokenizers import Tokenizer as HF
    from tokenizers import models, pre_tokenizers

    bare = HF(models.BPE(vocab={"a": 0, "b": 1}, merges=[]))
    bare.pre_tokenizer = pre_tokenizers.ByteLevel()
    bare.save(str(tmp_path / "odc" / "tokenizer.json"))
    problems = validate_checkpoint(tmp_path / "odc")
    assert any("config.json: no mask token" in p for p in problems), problems


@pytest.mark.parametrize("tie,shards", [(False, 2), (True, 1)])
def test_llada(tmp_path, tie, shards):
    source = write_llada(tmp_path / "llada", shards=shards, tie=tie)
    cfg, model, _ = load_checkpoint(tmp_path / "llada")
    eos = special_id("<|endoftext|>")
    check_cfg(
        cfg,
        vocab_size=320,
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        ffn_size=96,
        rope_theta=10000.0,
        qkv_bias=False,
        tie_embeddings=tie,
        norm_eps=1e-5,
        max_seq_len=1024,
        attention="bidirectional",
        infill_layout="in_place",
        logit_shift=False,
        mask_id=special_id("<|mdm_mask|>"),
        eos_id=eos,
        pad_id=eos,
        extra_stop_ids=[special_id("<|eot_id|>")],
    )
    assert same_logits(model, source)


def test_llada_without_mask_id_uses_126336(tmp_path):
    """LLaDA's documented mask id is the default; in a 320-token test vocabulary it cannot exist."""
    write_llada(tmp_path / "llada")
    edit_json_file(tmp_path / "llada" / "config.json", lambda c: c.pop("mask_token_id"))
    with pytest.raises(CheckpointError, match="mask_id 126336 is outside the vocabulary"):
        load_checkpoint(tmp_path / "llada")


def test_format_detected_from_architectures_when_model_type_absent(tmp_path):
    source = write_llada(tmp_path / "llada")
    edit_json_file(tmp_path / "llada" / "config.json", lambda c: c.pop("model_type"))
    _, model, _ = load_checkpoint(tmp_path / "llada")
    assert same_logits(model, source)


UNSUPPORTED = [  # (writer, config change, text of the error)
    (write_dream, {"hidden_act": "gelu"}, "hidden_act 'gelu'"),
    (write_dream, {"use_sliding_window": True}, "use_sliding_window"),
    (write_dream, {"rope_scaling": {"type": "yarn", "factor": 4.0}}, "RoPE scaling"),
    (write_open_dcoder, {"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}, "RoPE scaling"),
    (write_open_dcoder, {"head_dim": 32}, "head_dim 32"),
    (write_dream, {"num_hidden_layers": None}, "missing field 'num_hidden_layers'"),
    (write_llada, {"include_bias": True}, "include_bias=True"),
    (write_llada, {"block_group_size": 2}, "block_group_size=2"),
    (write_llada, {"activation_type": "gelu"}, "activation_type='gelu'"),
]


@pytest.mark.parametrize("writer,change,message", UNSUPPORTED, ids=[m for _, _, m in UNSUPPORTED])
def test_unsupported_architectures_are_named(tmp_path, writer, change, message):
    writer(tmp_path / "ck")
    edit_json_file(tmp_path / "ck" / "config.json", lambda c: c.update(change))
    problems = validate_checkpoint(tmp_path / "ck")
    assert any(str(tmp_path / "ck" / "config.json") in p and message in p for p in problems), problems
