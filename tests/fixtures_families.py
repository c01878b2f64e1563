"""Tiny random checkpoints of the 2026 diffusion families, in each one's on-disk format (shared test helpers).

config.json is spelled as each family publishes it (field names, architectures, auto_map, their own
block-size keys), with the real layer shapes scaled down: the GQA ratio, a head_dim that differs
from hidden_size / heads where the real model's does (Qwen3, SDAR-4B), tied or untied heads. The
tensors carry the stored Hugging Face names with shapes computed here from config.json, and the
tokenizers carry each family's special tokens by text (ids fall where they fall: sdls must look
them up). Nothing here imports sdls_model.checkpoint_formats, so a wrong mapping there fails the tests.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch
from fixtures_checkpoints import CODE, write_layout
from tokenizers import pre_tokenizers, trainers

from sdls_model.tokenizer import Tokenizer, new_bpe_tokenizer

# Seed-Coder's specials, in id order (bos 0, pad 1, eos 2 as in its config.json; the mask's real id is 5,
# what sits at 4 is not public, so here the mask lands at 4); its fill-in-the-middle tokens come later.
SEED_SPECIALS = ["<[begin▁of▁sentence]>", "<[PAD▁TOKEN]>", "<[end▁of▁sentence]>", "<[SEP▁TOKEN]>", "<[MASK_TOKEN]>"]
SEED_FIM = ["<[fim-prefix]>", "<[fim-suffix]>", "<[fim-middle]>"]
# Qwen2.5 / Qwen3 specials, appended after the BPE vocabulary as Qwen does.
QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
MASK_TEXT = {"sdar": "<|MASK|>", "fast-dllm-v2": "|<MASK>|", "a2d": "<|mask|>"}


def _bpe(vocab_size: int, head: list[str], tail: list[str]) -> Tokenizer:
    hf = new_bpe_tokenizer()
    hf.train_from_iterator(
        CODE,
        trainer=trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=head,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    hf.add_special_tokens(tail)
    return Tokenizer(hf)


@cache
def seed_tokenizer(with_fim: bool = True) -> Tokenizer:
    return _bpe(290, SEED_SPECIALS, SEED_FIM if with_fim else [])


@cache
def qwen_tokenizer(mask_text: str) -> Tokenizer:
    return _bpe(280, [], [*QWEN_SPECIALS, mask_text])


def token_id(tokenizer: Tokenizer, text: str) -> int:
    found = tokenizer.token_to_id(text)
    assert found is not None, text
    return found


# -- config.json as published (shapes scaled down) -----------------------------------------------------
def stable_diffcoder_config(revision: str = "current", **extra) -> dict:
    """Seed-Coder-8B's Llama config (GQA 32/8 -> 4/1, head_dim = hidden / heads, untied, rope 5e5)."""
    marker = {
        "current": dict(
            architectures=["StableDiffcoderForCausalLM"],
            auto_map={"AutoModelForCausalLM": "modeling_stable_diffcoder.StableDiffcoderForCausalLM"},
        ),
        # The older revision named the class LlamaForCausalLM and pointed auto_map at modeling_seed_diffcoder
        # (the class name inside that module is not public; only the module matters to sdls).
        "older": dict(
            architectures=["LlamaForCausalLM"],
            auto_map={"AutoModelForCausalLM": "modeling_seed_diffcoder.SeedDiffcoderForCausalLM"},
        ),
    }[revision]
    return {
        **marker,
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "pad_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 224,
        "max_position_embeddings": 8192,
        "mlp_bias": False,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": 320,
        **extra,
    }


def sdar_config(tokenizer: Tokenizer, block_size: int = 4, **extra) -> dict:
    """SDAR-4B-Chat's config (head_dim 128 != 2560 / 32 -> 32 != 64 / 4; GQA 4:1; untied)."""
    end = token_id(tokenizer, "<|endoftext|>")
    return {
        "architectures": ["SDARForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_sdar.SDARConfig",
            "AutoModel": "modeling_sdar.SDARModel",
            "AutoModelForCausalLM": "modeling_sdar.SDARForCausalLM",
        },
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_implementation": "flex_attention",
        "block_size": block_size,
        "bos_token_id": end,
        "eos_token_id": end,
        "fuse_cross_entropy": True,
        "head_dim": 32,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 240,
        "mask_token_id": token_id(tokenizer, "<|MASK|>"),
        "max_position_embeddings": 32768,
        "max_window_layers": 2,
        "model_type": "sdar",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 320,
        **extra,
    }


def a2d_config(tokenizer: Tokenizer, backbone: str = "qwen3", **extra) -> dict:
    """dllm's export of Qwen3-0.6B (head_dim 128 != 1024 / 16; GQA 2:1; tied) or Qwen2.5-Coder-0.5B
    (q/k/v biases; tied): model_type a2d-*, architectures of the LM head class, no mask id."""
    qwen3 = backbone == "qwen3"
    return {
        "architectures": ["A2DQwen3LMHeadModel" if qwen3 else "A2DQwen2LMHeadModel"],
        "model_type": f"a2d-{backbone}",
        "attention_dropout": 0.0,
        "bos_token_id": token_id(tokenizer, "<|endoftext|>"),
        "eos_token_id": token_id(tokenizer, "<|im_end|>"),
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 192,
        "max_position_embeddings": 40960 if qwen3 else 32768,
        "max_window_layers": 2,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 320,
        **({"attention_bias": False, "head_dim": 32} if qwen3 else {}),
        **extra,
    }


def fast_dllm_v2_config(tokenizer: Tokenizer, tie: bool = False, **extra) -> dict:
    """Fast-dLLM v2 7B (Qwen2.5-7B-Instruct: GQA 28/4 -> 7/1, untied) or 1.5B (tied), bd_size 32."""
    n_layers = 2
    return {
        "architectures": ["Fast_dLLM_QwenForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration.Fast_dLLM_QwenConfig",
            "AutoModel": "modeling.Fast_dLLM_QwenModel",
            "AutoModelForCausalLM": "modeling.Fast_dLLM_QwenForCausalLM",
        },
        "model_type": "Fast_dLLM_Qwen",
        "attention_dropout": 0.0,
        "bd_size": 32,
        "bos_token_id": token_id(tokenizer, "<|endoftext|>"),
        "eos_token_id": token_id(tokenizer, "<|im_end|>"),
        "hidden_act": "silu",
        "hidden_size": 112,
        "initializer_range": 0.02,
        "intermediate_size": 592,
        "layer_types": ["full_attention"] * n_layers,
        "max_position_embeddings": 32768,
        "max_window_layers": n_layers,
        "num_attention_heads": 7,
        "num_hidden_layers": n_layers,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": tie,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 320,
        **extra,
    }


# -- tensors with the stored names -------------------------------------------------------------------
def hf_shapes(config: dict, backbone: str) -> dict[str, tuple[int, ...]]:
    """Stored name -> shape of a transformers Llama / Qwen2 / Qwen3 causal LM with this config.json."""
    d, heads, kv = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    hd, ffn, vocab = config.get("head_dim") or d // heads, config["intermediate_size"], config["vocab_size"]
    shapes = {"model.embed_tokens.weight": (vocab, d), "model.norm.weight": (d,)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (heads * hd, d),
            p + "self_attn.k_proj.weight": (kv * hd, d),
            p + "self_attn.v_proj.weight": (kv * hd, d),
            p + "self_attn.o_proj.weight": (d, heads * hd),
            p + "mlp.gate_proj.weight": (ffn, d),
            p + "mlp.up_proj.weight": (ffn, d),
            p + "mlp.down_proj.weight": (d, ffn),
            p + "input_layernorm.weight": (d,),
            p + "post_attention_layernorm.weight": (d,),
        }
        if backbone == "qwen2":
            shapes |= {p + f"self_attn.{x}_proj.bias": (n * hd,) for x, n in (("q", heads), ("k", kv), ("v", kv))}
        if backbone == "qwen3":
            shapes |= {p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,)}
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


def random_tensors(config: dict, backbone: str, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in hf_shapes(config, backbone).items():
        is_norm = name.endswith("norm.weight")
        out[name] = (1.0 if is_norm else 0.0) + torch.randn(shape, generator=gen) * (0.1 if is_norm else 0.05)
    return out


# -- whole checkpoint directories --------------------------------------------------------------------
BACKBONE = {"stable-diffcoder": "llama", "sdar": "qwen3", "fast-dllm-v2": "qwen2"}


def write_family(
    directory: Path,
    family: str,
    *,
    tensors: dict[str, torch.Tensor] | None = None,
    shards: int = 1,
    seed: int = 0,
    **options,
) -> dict:
    """Write one family's checkpoint; family: stable-diffcoder, sdar, fast-dllm-v2, a2d-qwen2, a2d-qwen3.
    options go to the config writer (revision=, block_size=, tie=, extra fields). Returns config.json."""
    tokenizer_config: dict = {}
    generation_config = None
    if family == "stable-diffcoder":
        tokenizer = seed_tokenizer(options.pop("with_fim", True))
        config = stable_diffcoder_config(**options)
        tokenizer_config = {
            "bos_token": SEED_SPECIALS[0],
            "pad_token": SEED_SPECIALS[1],
            "eos_token": SEED_SPECIALS[2],
            "mask_token": SEED_SPECIALS[4],
        }
        backbone = "llama"
    elif family.startswith("a2d-"):
        tokenizer = qwen_tokenizer(MASK_TEXT["a2d"])
        backbone = family.removeprefix("a2d-")
        config = a2d_config(tokenizer, backbone, **options)
        # dllm's get_tokenizer adds the mask token; the saved tokenizer then declares it.
        tokenizer_config = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "mask_token": MASK_TEXT["a2d"]}
    else:
        tokenizer = qwen_tokenizer(MASK_TEXT[family])
        backbone = BACKBONE[family]
        config = (sdar_config if family == "sdar" else fast_dllm_v2_config)(tokenizer, **options)
        tokenizer_config = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
        if family == "sdar":
            tokenizer_config["mask_token"] = MASK_TEXT["sdar"]
        end, im_end = token_id(tokenizer, "<|endoftext|>"), token_id(tokenizer, "<|im_end|>")
        generation_config = {"eos_token_id": [im_end, end], "pad_token_id": end}
    tensors = tensors if tensors is not None else random_tensors(config, backbone, seed)
    write_layout(directory, tensors, config, tokenizer, shards, tokenizer_config=tokenizer_config)
    if generation_config is not None:
        (directory / "generation_config.json").write_text(json.dumps(generation_config))
    return config


def tokenizer_of(family: str) -> Tokenizer:
    if family == "stable-diffcoder":
        return seed_tokenizer()
    return qwen_tokenizer(MASK_TEXT["a2d" if family.startswith("a2d") else family])
