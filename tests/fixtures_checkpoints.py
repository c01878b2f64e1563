"""Tiny random checkpoints written in each format's exact on-disk layout (shared test helpers).

Import from a test as `from fixtures_checkpoints import ...` (pytest puts tests/ on sys.path).
The stored names and config.json fields are spelled out here, independently of
sdls_model.checkpoint_formats, so a wrong mapping there makes the loader tests fail.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import pre_tokenizers, trainers

from sdls_model.checkpoint import save_checkpoint
from sdls_model.config import ModelConfig
from sdls_model.tokenizer import Tokenizer, new_bpe_tokenizer, train_tokenizer
from sdls_model.transformer import Transformer

CODE = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n    def __init__(self, x):\n        self.x = x\n",
    "for i in range(10):\n    print(i)\n",
    "import os\nprint(os.getcwd())\n",
] * 5
# Special tokens appended after the BPE vocabulary, as Qwen / LLaDA tokenizers do.
EXTERNAL_SPECIALS = ["<|endoftext|>", "<|im_end|>", "<|mask|>", "<M>", "<|mdm_mask|>", "<|eot_id|>"]


@cache
def sdls_tokenizer() -> Tokenizer:
    return train_tokenizer(CODE, vocab_size=300)


@cache
def external_tokenizer() -> Tokenizer:
    """A byte-level BPE (< 300 tokens) with Qwen/LLaDA-style special tokens at the end."""
    hf = new_bpe_tokenizer()
    hf.train_from_iterator(
        CODE,
        trainer=trainers.BpeTrainer(
            vocab_size=280, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        ),
    )
    hf.add_special_tokens(EXTERNAL_SPECIALS)
    return Tokenizer(hf)


def special_id(token: str) -> int:
    token_id = external_tokenizer().token_to_id(token)
    assert token_id is not None, token
    return token_id


def random_model(cfg: ModelConfig, seed: int = 0) -> Transformer:
    """Every parameter random, norms and biases included, so a swapped or dropped tensor shows."""
    model = Transformer(cfg).init_weights(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (0.1 if "norm" in name or name.endswith("bias") else 0.02))
    return model.eval()


def tiny_cfg(**overrides) -> ModelConfig:
    return ModelConfig.from_name("test-tiny", **overrides)


def external_cfg(**overrides) -> ModelConfig:
    """A tiny Qwen2/LLaMA-like config with the external tokenizer's special ids."""
    base = dict(
        vocab_size=320,
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        ffn_size=96,
        rope_theta=50000.0,
        qkv_bias=True,
        tie_embeddings=False,
        norm_eps=1e-6,
        attention="bidirectional",
        infill_layout="in_place",
        mask_id=special_id("<|mask|>"),
        eos_id=special_id("<|endoftext|>"),
        bos_id=None,
        fim_prefix_id=None,
        fim_suffix_id=None,
        fim_middle_id=None,
    )
    return ModelConfig(**{**base, **overrides})


def write_sdls(directory: Path, cfg: ModelConfig | None = None, seed: int = 0, **save_kwargs) -> Transformer:
    model = random_model(cfg or tiny_cfg(), seed)
    save_checkpoint(directory, model, sdls_tokenizer(), **save_kwargs)
    return model


def write_layout(
    directory: Path,
    tensors: dict[str, torch.Tensor],
    config: dict,
    tokenizer: Tokenizer,
    shards: int = 1,
    tokenizer_config: dict | None = None,
) -> None:
    """The HF directory layout: config.json, model.safetensors or N shards + index, tokenizer.json."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save(directory / "tokenizer.json")
    if tokenizer_config is not None:
        (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    if shards == 1:
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
        return
    names = list(tensors)
    weight_map = {}
    for i in range(shards):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = names[i::shards]
        save_file({n: tensors[n] for n in part}, str(directory / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )


# -- Qwen2 family (Dream, DiffuCoder, Open-dCoder) ------------------------------------------------
def qwen2_tensors(model: Transformer) -> dict[str, torch.Tensor]:
    """HF Qwen2 names: everything under "model.", the head as "lm_head.weight" (absent when tied)."""
    out = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            if not model.cfg.tie_embeddings:
                out[name] = t
        else:
            out["model." + name] = t
    return out


def qwen2_config_json(cfg: ModelConfig, model_type: str, architectures: list[str], **extra) -> dict:
    """config.json fields as Dream (transformers 4.x style: rope_theta at top level) ships them."""
    return {
        "architectures": architectures,
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_size,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "tie_word_embeddings": cfg.tie_embeddings,
        "use_sliding_window": False,
        "sliding_window": None,
        "torch_dtype": "float32",
        "attention_dropout": 0.0,
        "bos_token_id": special_id("<|endoftext|>"),
        "eos_token_id": special_id("<|endoftext|>"),
        "pad_token_id": special_id("<|endoftext|>"),
        **extra,
    }


def write_dream(
    directory: Path, tie: bool = False, shards: int = 1, seed: int = 0, with_mask_id: bool = True
) -> Transformer:
    cfg = external_cfg(tie_embeddings=tie, logit_shift=True)
    model = random_model(cfg, seed)
    extra = {"mask_token_id": special_id("<|mask|>")} if with_mask_id else {}
    write_layout(
        directory,
        qwen2_tensors(model),
        qwen2_config_json(cfg, "Dream", ["DreamModel"], **extra),
        external_tokenizer(),
        shards,
    )
    return model


def write_open_dcoder(directory: Path, tie: bool = True, shards: int = 1, seed: int = 0) -> Transformer:
    """Qwen2ForCausalLM layout; no mask_token_id in config.json: the mask is the tokenizer's "<M>"."""
    cfg = external_cfg(tie_embeddings=tie, logit_shift=True, mask_id=special_id("<M>"))
    model = random_model(cfg, seed)
    write_layout(
        directory,
        qwen2_tensors(model),
        qwen2_config_json(cfg, "qwen2", ["Qwen2ForCausalLM"]),
        external_tokenizer(),
        shards,
        tokenizer_config={"mask_token": "<M>", "eos_token": "<|endoftext|>"},
    )
    return model


# -- LLaDA -------------------------------------------------------------------------------------------
LLADA_LAYER = {  # our per-layer name -> LLaDA's (from LLaDA's modelling code: act(ff_proj(x)) * up_proj(x))
    "self_attn.q_proj": "q_proj",
    "self_attn.k_proj": "k_proj",
    "self_attn.v_proj": "v_proj",
    "self_attn.o_proj": "attn_out",
    "mlp.gate_proj": "ff_proj",
    "mlp.up_proj": "up_proj",
    "mlp.down_proj": "ff_out",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ff_norm",
}


def llada_name(ours: str) -> str:
    top = {
        "embed_tokens.weight": "model.transformer.wte.weight",
        "norm.weight": "model.transformer.ln_f.weight",
        "lm_head.weight": "model.transformer.ff_out.weight",
    }
    if ours in top:
        return top[ours]
    _, layer, rest = ours.split(".", 2)
    module, kind = rest.rsplit(".", 1)
    return f"model.transformer.blocks.{layer}.{LLADA_LAYER[module]}.{kind}"


def llada_config_json(cfg: ModelConfig, **extra) -> dict:
    """config.json fields as LLaDA-8B ships them (OLMo-style names)."""
    return {
        "architectures": ["LLaDAModelLM"],
        "model_type": "llada",
        "activation_type": "silu",
        "alibi": False,
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": cfg.d_model,
        "embedding_size": cfg.vocab_size,
        "vocab_size": cfg.vocab_size,
        "include_bias": False,
        "include_qkv_bias": cfg.qkv_bias,
        "layer_norm_type": "rms",
        "rms_norm_eps": cfg.norm_eps,
        "mlp_hidden_size": cfg.ffn_size,
        "mlp_ratio": 4,
        "n_heads": cfg.n_heads,
        "n_kv_heads": cfg.n_kv_heads,
        "n_layers": cfg.n_layers,
        "max_sequence_length": 1024,
        "rope": True,
        "rope_theta": cfg.rope_theta,
        "rope_full_precision": True,
        "scale_logits": False,
        "attention_layer_norm": False,
        "weight_tying": cfg.tie_embeddings,
        "mask_token_id": special_id("<|mdm_mask|>"),
        "eos_token_id": special_id("<|endoftext|>"),
        "pad_token_id": special_id("<|endoftext|>"),
        "use_cache": False,
        **extra,
    }


def llada_cfg(**overrides) -> ModelConfig:
    return external_cfg(
        qkv_bias=False,
        norm_eps=1e-5,
        rope_theta=10000.0,
        mask_id=special_id("<|mdm_mask|>"),
        extra_stop_ids=[special_id("<|eot_id|>")],
        **overrides,
    )


def write_llada(directory: Path, shards: int = 1, seed: int = 0, tie: bool = False) -> Transformer:
    cfg = llada_cfg(tie_embeddings=tie)
    model = random_model(cfg, seed)
    tensors = {llada_name(n): t for n, t in model.state_dict().items() if not (tie and n == "lm_head.weight")}
    write_layout(directory, tensors, llada_config_json(cfg), external_tokenizer(), shards)
    return model


def edit_json_file(path: Path, edit) -> None:
    """Load a JSON file, let `edit` change the dict in place, write it back."""
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
