"""Forward parity with Hugging Face transformers (test-only reference), fp32, bidirectional.

HF's Qwen2 / Llama are causal; we run them without the causal mask by passing a prepared 4D
additive mask of zeros (transformers returns a 4D mask as-is instead of building a causal one),
and first prove that this really removes causality. The checkpoints are written by HF's own
save_pretrained (Dream / Open-dCoder), or from HF Llama weights renamed into LLaDA's layout, and
loaded through sdls's loaders, so names, config fields and the forward are all checked at once.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from fixtures_checkpoints import external_tokenizer, llada_cfg, llada_config_json, llada_name, special_id, write_layout

from sdls_model.checkpoint import load_checkpoint

transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)
MAX_REL_ERR = 1e-5
TOKENS = torch.tensor([[5, 17, 250, 3, 99, 0, 42, 140, 8, 77, 301, 12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
POSITIONS = torch.arange(TOKENS.shape[1]).expand_as(TOKENS)


def no_causal_mask(tokens: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) additive mask of zeros: every query attends to every key."""
    B, T = tokens.shape
    return torch.zeros(B, 1, T, T)


def randomize(model: torch.nn.Module, seed: int) -> None:
    """HF inits biases to 0 and norms to 1; perturb everything so each tensor matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def qwen2(tie: bool, seed: int = 0):
    config = transformers.Qwen2Config(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_theta=50000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tie,
        eos_token_id=special_id("<|endoftext|>"),
        pad_token_id=special_id("<|endoftext|>"),
    )
    torch.manual_seed(seed)
    model = transformers.Qwen2ForCausalLM(config).eval()
    randomize(model, seed)
    return model


def llama(seed: int = 0):
    cfg = llada_cfg()
    config = transformers.LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.ffn_size,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        rope_theta=cfg.rope_theta,
        rms_norm_eps=cfg.norm_eps,
        tie_word_embeddings=False,
        attention_bias=False,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config).eval()
    randomize(model, seed)
    return model, cfg


def test_zero_4d_mask_removes_causality_in_hf():
    """A later token must change an earlier output with our mask, and must not without it."""
    model = qwen2(tie=False)
    changed = TOKENS.clone()
    changed[:, -1] = 200
    with torch.no_grad():
        bidir = [model.model(t, attention_mask=no_causal_mask(t)).last_hidden_state[:, 0] for t in (TOKENS, changed)]
        causal = [model.model(t).last_hidden_state[:, 0] for t in (TOKENS, changed)]
    assert (bidir[0] - bidir[1]).abs().max() > 1e-3
    assert torch.equal(causal[0], causal[1])


def compare(hf_model, directory) -> tuple[float, float]:
    _, ours, _ = load_checkpoint(directory)
    with torch.no_grad():
        ref_hidden = hf_model.model(TOKENS, attention_mask=no_causal_mask(TOKENS)).last_hidden_state
        ref_logits = hf_model(TOKENS, attention_mask=no_causal_mask(TOKENS)).logits
        hidden = ours(TOKENS, POSITIONS)  # mask=None: bidirectional
        logits = ours.logits(hidden)
    return rel_err(hidden, ref_hidden), rel_err(logits, ref_logits)


@pytest.mark.parametrize("tie,shard", [(False, None), (True, "40KB")])
def test_dream_layout_matches_hf_qwen2(tmp_path, tie, shard):
    """Written by Qwen2ForCausalLM.save_pretrained, relabelled as Dream (model_type, mask id)."""
    hf_model = qwen2(tie)
    hf_model.save_pretrained(tmp_path / "dream", **({"max_shard_size": shard} if shard else {}))
    config_path = tmp_path / "dream" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(model_type="Dream", architectures=["DreamModel"], mask_token_id=special_id("<|mask|>"))
    config_path.write_text(json.dumps(config))
    external_tokenizer().save(tmp_path / "dream" / "tokenizer.json")
    assert (tmp_path / "dream" / "model.safetensors.index.json").exists() == bool(shard)
    hidden_err, logits_err = compare(hf_model, tmp_path / "dream")
    assert hidden_err <= MAX_REL_ERR and logits_err <= MAX_REL_ERR, (hidden_err, logits_err)


def test_open_dcoder_layout_matches_hf_qwen2(tmp_path):
    """save_pretrained output untouched (transformers-5 config: rope_parameters, layer_types)."""
    hf_model = qwen2(tie=True, seed=1)
    hf_model.save_pretrained(tmp_path / "odc")
    external_tokenizer().save(tmp_path / "odc" / "tokenizer.json")
    (tmp_path / "odc" / "tokenizer_config.json").write_text(json.dumps({"mask_token": "<M>"}))
    cfg, _, _ = load_checkpoint(tmp_path / "odc")
    assert (cfg.mask_id, cfg.rope_theta, cfg.logit_shift) == (special_id("<M>"), 50000.0, True)
    hidden_err, logits_err = compare(hf_model, tmp_path / "odc")
    assert hidden_err <= MAX_REL_ERR and logits_err <= MAX_REL_ERR, (hidden_err, logits_err)


def test_llada_layout_matches_hf_llama(tmp_path):
    """LLaDA is LLaMA without the causal mask: HF Llama weights renamed into LLaDA's layout."""
    hf_model, cfg = llama()
    tensors = {llada_name(name.removeprefix("model.")): t for name, t in hf_model.state_dict().items()}
    write_layout(tmp_path / "llada", tensors, llada_config_json(cfg), external_tokenizer(), shards=2)
    hidden_err, logits_err = compare(hf_model, tmp_path / "llada")
    assert hidden_err <= MAX_REL_ERR and logits_err <= MAX_REL_ERR, (hidden_err, logits_err)
