"""The 2026 families load from their own on-disk format with the facts their publishers document:
detected from config.json (never the folder name), special ids looked up in the tokenizer, each
family's block size, alignment, logit shift and fill-in-the-middle strategy."""

from __future__ import annotations

import json

import pytest
import torch
from fixtures_checkpoints import edit_json_file
from fixtures_families import token_id, tokenizer_of, write_family
from safetensors.torch import load_file

from sdls_model.checkpoint import CheckpointError, load_checkpoint, validate_checkpoint

torch.set_num_threads(1)


def facts(cfg, *names):
    return {n: getattr(cfg, n) for n in names}


def assert_weights_are_the_stored_ones(directory, model):
    stored = {}
    for f in directory.glob("*.safetensors"):
        stored |= load_file(str(f))
    ours = model.state_dict()
    for name, tensor in ours.items():
        key = name if name == "lm_head.weight" else "model." + name  # Hugging Face names
        if key in stored:
            assert torch.equal(tensor, stored[key]), name
        else:
            assert name == "lm_head.weight" and model.cfg.tie_embeddings
    assert len(stored) == len(ours) - model.cfg.tie_embeddings


@pytest.mark.parametrize("revision", ["current", "older"])
def test_stable_diffcoder(tmp_path, revision):
    write_family(tmp_path / "sdc", "stable-diffcoder", revision=revision)
    cfg, model, tok = load_checkpoint(tmp_path / "sdc")
    assert facts(cfg, "family", "attention", "block_size", "block_align", "logit_shift", "threshold") == {
        "family": "stable-diffcoder",
        "attention": "block_causal",
        "block_size": 4,
        "block_align": "sequence",
        "logit_shift": False,
        "threshold": 0.95,
    }
    assert (cfg.mask_id, cfg.bos_id, cfg.pad_id, cfg.eos_id) == (tok.token_to_id("<[MASK_TOKEN]>"), 0, 1, 2)
    fim = [tok.token_to_id(t) for t in ("<[fim-prefix]>", "<[fim-suffix]>", "<[fim-middle]>")]
    assert cfg.infill_layout == "fim" and [cfg.fim_prefix_id, cfg.fim_suffix_id, cfg.fim_middle_id] == fim
    assert (cfg.head_dim, cfg.qk_norm, cfg.qkv_bias, cfg.tie_embeddings, cfg.rope_theta) == (
        16,
        False,
        False,
        False,
        5e5,
    )
    assert_weights_are_the_stored_ones(tmp_path / "sdc", model)


def test_stable_diffcoder_without_fim_tokens_completes_from_the_prefix(tmp_path):
    write_family(tmp_path / "sdc", "stable-diffcoder", with_fim=False)
    cfg, _, _ = load_checkpoint(tmp_path / "sdc")
    assert (cfg.infill_layout, cfg.fim_prefix_id, cfg.fim_suffix_id, cfg.fim_middle_id) == (
        "prefix_only",
        None,
        None,
        None,
    )


def test_stable_diffcoder_bos_follows_the_tokenizer_config(tmp_path):
    write_family(tmp_path / "sdc", "stable-diffcoder")
    edit_json_file(tmp_path / "sdc" / "tokenizer_config.json", lambda c: c.update(add_bos_token=False))
    cfg, _, _ = load_checkpoint(tmp_path / "sdc")
    assert cfg.bos_id is None


def test_stable_diffcoder_is_detected_by_auto_map_alone(tmp_path):
    write_family(tmp_path / "sdc", "stable-diffcoder", revision="older")
    edit_json_file(tmp_path / "sdc" / "config.json", lambda c: c.pop("architectures"))
    cfg, _, _ = load_checkpoint(tmp_path / "sdc")
    assert cfg.family == "stable-diffcoder"


def test_a_plain_llama_is_refused_as_autoregressive(tmp_path):
    write_family(tmp_path / "llama", "stable-diffcoder", revision="older")
    edit_json_file(tmp_path / "llama" / "config.json", lambda c: c.pop("auto_map"))
    problems = validate_checkpoint(tmp_path / "llama")
    assert any("config.json" in p and "autoregressive model, not a diffusion one" in p for p in problems), problems


def test_the_folder_name_is_never_used(tmp_path):
    """An SDAR checkpoint in a folder named like another family is still SDAR."""
    write_family(tmp_path / "Stable-DiffCoder-8B-Instruct-bd3lm", "sdar")
    cfg, _, _ = load_checkpoint(tmp_path / "Stable-DiffCoder-8B-Instruct-bd3lm")
    assert cfg.family == "sdar"


@pytest.mark.parametrize("block_size", [4, 16])
def test_sdar(tmp_path, block_size):
    write_family(tmp_path / "sdar", "sdar", block_size=block_size)
    cfg, model, tok = load_checkpoint(tmp_path / "sdar")
    assert facts(cfg, "family", "attention", "block_size", "block_align", "logit_shift", "infill_layout") == {
        "family": "sdar",
        "attention": "block_causal",
        "block_size": block_size,
        "block_align": "sequence",
        "logit_shift": False,
        "infill_layout": "prefix_only",
    }
    assert cfg.mask_id == token_id(tok, "<|MASK|>") and cfg.bos_id is None
    # eos = <|endoftext|> (config.json); <|im_end|> ends a chat turn (generation_config.json, family table).
    assert cfg.eos_id == token_id(tok, "<|endoftext|>") and token_id(tok, "<|im_end|>") in cfg.stop_ids
    assert (cfg.head_dim, cfg.d_model // cfg.n_heads, cfg.qk_norm, cfg.qkv_bias) == (32, 16, True, False)
    assert_weights_are_the_stored_ones(tmp_path / "sdar", model)


@pytest.mark.parametrize("tie", [False, True])
def test_fast_dllm_v2(tmp_path, tie):
    write_family(tmp_path / "fd", "fast-dllm-v2", tie=tie)
    cfg, model, tok = load_checkpoint(tmp_path / "fd")
    assert facts(cfg, "family", "block_size", "block_align", "sub_block_size", "logit_shift", "qkv_bias") == {
        "family": "fast-dllm-v2",
        "block_size": 32,
        "block_align": "sequence",
        "sub_block_size": 8,
        "logit_shift": True,
        "qkv_bias": True,
    }
    assert cfg.mask_id == token_id(tok, "|<MASK>|") and cfg.eos_id == token_id(tok, "<|im_end|>")
    assert cfg.tie_embeddings == tie
    assert_weights_are_the_stored_ones(tmp_path / "fd", model)


def test_fast_dllm_v2_block_size_is_bd_size(tmp_path):
    write_family(tmp_path / "fd", "fast-dllm-v2", bd_size=16)
    assert load_checkpoint(tmp_path / "fd")[0].block_size == 16


@pytest.mark.parametrize("backbone", ["qwen2", "qwen3"])
@pytest.mark.parametrize("objective", [None, "mdlm", "bd3lm"])
def test_tiny_a2d(tmp_path, backbone, objective):
    extra = {"sdls_objective": objective} if objective else {}
    write_family(tmp_path / "a2d", f"a2d-{backbone}", **extra)
    cfg, model, tok = load_checkpoint(tmp_path / "a2d")
    bd3lm = objective == "bd3lm"
    assert facts(cfg, "family", "attention", "infill_layout", "logit_shift", "qk_norm", "qkv_bias") == {
        "family": "a2d-bd3lm" if bd3lm else "a2d-mdlm",
        "attention": "block_causal" if bd3lm else "bidirectional",
        "infill_layout": "prefix_only" if bd3lm else "in_place",
        "logit_shift": False,
        "qk_norm": backbone == "qwen3",
        "qkv_bias": backbone == "qwen2",
    }
    if bd3lm:
        assert (cfg.block_size, cfg.block_align) == (32, "generation")
    assert cfg.mask_id == token_id(tok, "<|mask|>") and cfg.tie_embeddings
    assert_weights_are_the_stored_ones(tmp_path / "a2d", model)


def test_overrides_in_config_json(tmp_path):
    write_family(tmp_path / "a2d", "a2d-qwen3", sdls_objective="bd3lm", sdls_block_size=16, sdls_logit_shift=True)
    cfg, _, _ = load_checkpoint(tmp_path / "a2d")
    assert (cfg.block_size, cfg.logit_shift) == (16, True)


@pytest.mark.parametrize(
    "family,change,message",
    [
        ("a2d-qwen3", {"sdls_objective": "bd4lm"}, "sdls_objective 'bd4lm' is not one of 'mdlm', 'bd3lm'"),
        ("sdar", {"block_size": "four"}, "field 'block_size' must be an integer"),
        ("sdar", {"attention_bias": True}, "attention_bias=true is not supported"),
        ("stable-diffcoder", {"mlp_bias": True}, "mlp_bias=true is not supported"),
        ("fast-dllm-v2", {"bd_size": 0}, "block_size must be positive"),
        ("stable-diffcoder", {"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "RoPE scaling"),
    ],
)
def test_unsupported_settings_are_named(tmp_path, family, change, message):
    write_family(tmp_path / "ck", family)
    edit_json_file(tmp_path / "ck" / "config.json", lambda c: c.update(change))
    problems = validate_checkpoint(tmp_path / "ck")
    assert any(str(tmp_path / "ck" / "config.json") in p and message in p for p in problems), problems


def test_a_missing_mask_token_is_named(tmp_path):
    """Fast-dLLM v2 has no mask_token_id in config.json: without |<MASK>| in the tokenizer it cannot run."""
    write_family(tmp_path / "fd", "fast-dllm-v2")
    tok = json.loads((tmp_path / "fd" / "tokenizer.json").read_text())
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] != "|<MASK>|"]
    (tmp_path / "fd" / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(CheckpointError, match=r"no mask token: .*\|<MASK>\|"):
        load_checkpoint(tmp_path / "fd")


def test_fixture_tokenizers_carry_the_family_tokens():
    assert tokenizer_of("stable-diffcoder").token_to_id("<[fim-middle]>") is not None
    assert tokenizer_of("sdar").token_to_id("<|MASK|>") is not None


def test_tiny_a2d_backbone_comes_from_architectures_without_its_model_type(tmp_path):
    write_family(tmp_path / "a2d", "a2d-qwen3")
    edit_json_file(tmp_path / "a2d" / "config.json", lambda c: c.update(model_type="qwen3"))
    cfg, _, _ = load_checkpoint(tmp_path / "a2d")
    assert (cfg.family, cfg.qk_norm, cfg.head_dim) == ("a2d-mdlm", True, 32)
