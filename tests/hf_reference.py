"""transformers reference models and the families' published attention rules (test-only helpers).

The rules are written here from each family's reference code, independently of sdls's layout.py:
- Stable-DiffCoder: `tril(ones(nb, nb)).kron(ones(B, B))[:L, :L]` (modeling_stable_diffcoder);
- SDAR: the same staircase via repeat_interleave (generate.py block_diffusion_generate);
- Fast-dLLM v2: `q_idx // B >= kv_idx // B` (eval_block_diff_mask);
- Tiny-A2D BD3LM: the prompt left-padded to whole blocks, `block(k) <= block(q)` on padded positions,
  padding invisible, RoPE positions skipping the padding (dllm's BD3LM sampler);
- Tiny-A2D MDLM: every token sees every other.
"""

from __future__ import annotations

import torch


def staircase_kron(length: int, block: int) -> torch.Tensor:
    nb = -(-length // block)
    return torch.tril(torch.ones(nb, nb)).kron(torch.ones(block, block))[:length, :length].bool()


def staircase_repeat(length: int, block: int) -> torch.Tensor:
    nb = -(-length // block)
    full = torch.tril(torch.ones(nb, nb)).repeat_interleave(block, 0).repeat_interleave(block, 1)
    return full[:length, :length].bool()


def block_diff_eval(length: int, block: int) -> torch.Tensor:
    q, k = torch.arange(length)[:, None], torch.arange(length)[None, :]
    return q // block >= k // block


RULES = {"stable-diffcoder": staircase_kron, "sdar": staircase_repeat, "fast-dllm-v2": block_diff_eval}


def hf_model(config: dict, backbone: str, tensors: dict, attn: str = "eager"):
    """transformers' Llama / Qwen2 / Qwen3 causal LM with this config.json's shapes, holding `tensors`."""
    import transformers

    kwargs = dict(
        vocab_size=config["vocab_size"],
        hidden_size=config["hidden_size"],
        intermediate_size=config["intermediate_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        num_key_value_heads=config["num_key_value_heads"],
        rope_theta=config["rope_theta"],
        rms_norm_eps=config["rms_norm_eps"],
        tie_word_embeddings=config["tie_word_embeddings"],
        max_position_embeddings=config["max_position_embeddings"],
    )
    if "head_dim" in config:
        kwargs["head_dim"] = config["head_dim"]
    classes = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
    }
    config_class, model_class = classes[backbone]
    hf_config = config_class(**kwargs)
    hf_config._attn_implementation = attn
    model = model_class(hf_config).eval()
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    if config["tie_word_embeddings"]:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def as_hf_mask(allow: torch.Tensor, attn: str) -> torch.Tensor:
    """(T, T) True = may attend -> the 4D mask transformers takes as is (eager needs an additive float)."""
    if attn == "sdpa":
        return allow[None, None]
    return torch.zeros(1, 1, *allow.shape).masked_fill(~allow, torch.finfo(torch.float32).min)


def reference_logits(family: str, config: dict, model, tokens: torch.Tensor, ctx_len: int, attn: str = "eager"):
    """The reference model's logits over `tokens` (1, T) whose first ctx_len tokens are the prompt."""
    T = tokens.shape[1]
    with torch.no_grad():
        if family.startswith("a2d") and config.get("sdls_objective") == "bd3lm":
            B = config.get("sdls_block_size", 32)
            pad = -ctx_len % B  # dllm's sampler left-pads the prompt to whole blocks
            padded = torch.cat([torch.zeros(1, pad, dtype=torch.long), tokens], 1)
            physical = torch.arange(pad + T)
            real = physical >= pad
            allow = (physical[None, :] // B <= physical[:, None] // B) & real[None, :]
            allow |= torch.eye(pad + T, dtype=torch.bool)  # padding queries see themselves (no empty rows)
            positions = (physical - pad).clamp(min=0)[None]
            out = model(padded, attention_mask=as_hf_mask(allow, attn), position_ids=positions).logits
            return out[:, pad:]
        if family.startswith("a2d"):
            allow = torch.ones(T, T, dtype=torch.bool)
        else:
            block = {"stable-diffcoder": 4}.get(family) or config.get("block_size") or config["bd_size"]
            allow = RULES[family](T, block)
        return model(tokens, attention_mask=as_hf_mask(allow, attn)).logits
