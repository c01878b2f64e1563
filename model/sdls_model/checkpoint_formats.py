"""The checkpoint formats sdls reads: how each one's config.json and tensor names map onto ours.

A format is two pure functions: config.json (+ tokenizer facts) -> ModelConfig, and our parameter
name -> the name stored on disk. Everything else (which tensors must exist, their shapes) follows
from the ModelConfig, so a new format is a few lines here.

Formats (facts from the models' public config files and modelling code):
- sdls: our own names (HF Qwen2 names without "model."), config.json = ModelConfig.to_dict().
- Dream / Dream-Coder / DiffuCoder (model_type "Dream"): Qwen2 names under "model.", lm_head,
  q/k/v bias, bidirectional, logits shifted by one (row i-1 predicts token i).
- Open-dCoder (model_type "qwen2", Qwen2ForCausalLM names): Open-dLLM's diffusion_generate runs
  the model with is_causal=False and shifts logits like Dream (`cat([logits[:, :1], logits[:, :-1]])`),
  so logit_shift defaults to True. Its mask token is whatever the tokenizer declares as mask_token
  (Open-dLLM's training adds "<M>", its sample.py "[MASK]", when the base tokenizer has none; the
  published tokenizer files could not be checked offline), so we look it up (see `find_mask_id`).
  Both defaults can be overridden by "sdls_logit_shift" / "mask_token_id" in config.json.
- LLaDA (model_type "llada"; OLMo-style names under "model.transformer."): SwiGLU with ff_proj as
  the gate (silu applied) and up_proj as the up projection, ff_out the down projection; no logit
  shift; mask 126336, eos 126081, <|eot_id|> 126348 as an extra stop.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from .config import ModelConfig

TokenLookup = Callable[[str], "int | None"]  # token text -> id, None if the tokenizer lacks it


class FormatError(ValueError):
    """config.json does not describe a model this format (or sdls) can run."""


@dataclass(frozen=True)
class CheckpointFormat:
    name: str
    make_config: Callable[[dict, TokenLookup, dict], ModelConfig]  # (config.json, lookup, tokenizer_config) -> cfg
    stored_name: Callable[[str], str]  # our parameter name -> the name on disk
    ignorable: Callable[[str], bool]  # stored names that are harmless leftovers (skipped, not loaded)


# -- shared helpers -------------------------------------------------------------------------------
def _require(raw: dict, key: str):
    if key not in raw or raw[key] is None:
        raise FormatError(f"missing field {key!r}")
    return raw[key]


def _ids(value) -> list[int]:
    """eos_token_id may be an int or a list of ints."""
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, list) else [value])]


def _reject_if(condition: bool, message: str) -> None:
    if condition:
        raise FormatError(message)


def rope_theta(raw: dict) -> float:
    """Plain RoPE only. transformers 5 writes rope_parameters={rope_type, rope_theta}; 4.x
    (what Dream and DiffuCoder ship) writes rope_theta and rope_scaling."""
    params = raw.get("rope_parameters") or raw.get("rope_scaling")
    if params:
        kind = params.get("rope_type", params.get("type", "default")) if isinstance(params, dict) else params
        _reject_if(kind != "default", f"RoPE scaling {params!r} is not supported (plain RoPE only)")
        if isinstance(params, dict) and "rope_theta" in params:
            return float(params["rope_theta"])
    return float(raw.get("rope_theta", 10000.0))


def find_mask_id(
    raw: dict,
    lookup: TokenLookup,
    tokenizer_config: dict,
    fallback_names: tuple[str, ...] = ("<|mask|>", "<M>", "[MASK]", "<mask>"),
) -> int:
    """The mask token: config.json's mask_token_id, else the tokenizer's declared mask_token,
    else the first of fallback_names the tokenizer knows."""
    if raw.get("mask_token_id") is not None:
        return int(raw["mask_token_id"])
    declared = tokenizer_config.get("mask_token")
    if isinstance(declared, dict):  # AddedToken serialised as {"content": ...}
        declared = declared.get("content")
    for name in ([declared] if declared else []) + list(fallback_names):
        token_id = lookup(name)
        if token_id is not None:
            return token_id
    raise FormatError(
        "no mask token: config.json has no mask_token_id and the tokenizer has none of "
        f"{', '.join(([declared] if declared else []) + list(fallback_names))}"
    )


# -- sdls ------------------------------------------------------------------------------------------
_TYPE_CHECKS = {  # ModelConfig annotation -> (accepts, description)
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "int | None": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an integer or null"),
    "list[int]": (
        lambda v: isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v),
        "a list of integers",
    ),
}


def _sdls_config(raw: dict, lookup: TokenLookup, tokenizer_config: dict) -> ModelConfig:
    # ModelConfig trusts its caller's types; a config.json is user input, so check them here.
    for f in dataclasses.fields(ModelConfig):
        if f.name in raw and str(f.type) in _TYPE_CHECKS:
            accepts, description = _TYPE_CHECKS[str(f.type)]
            if not accepts(raw[f.name]):
                raise FormatError(f"field {f.name!r} must be {description}, got {raw[f.name]!r}")
    return ModelConfig.from_dict(raw)


SDLS = CheckpointFormat("sdls", _sdls_config, stored_name=lambda ours: ours, ignorable=lambda name: False)


# -- Qwen2 family: Dream, DiffuCoder, Open-dCoder --------------------------------------------------
def _qwen2_config(raw: dict, lookup: TokenLookup, tokenizer_config: dict, *, logit_shift_default: bool) -> ModelConfig:
    hidden, heads = int(_require(raw, "hidden_size")), int(_require(raw, "num_attention_heads"))
    _reject_if(
        raw.get("hidden_act", "silu") != "silu", f"hidden_act {raw.get('hidden_act')!r} (only silu is supported)"
    )
    _reject_if(bool(raw.get("use_sliding_window")), "use_sliding_window=true is not supported")
    _reject_if(
        raw.get("head_dim") not in (None, hidden // heads),
        f"head_dim {raw.get('head_dim')} != hidden_size / num_attention_heads = {hidden // heads}",
    )
    eos = _ids(raw.get("eos_token_id"))
    _reject_if(not eos, "missing field 'eos_token_id'")
    return ModelConfig(
        vocab_size=int(_require(raw, "vocab_size")),
        d_model=hidden,
        n_layers=int(_require(raw, "num_hidden_layers")),
        n_heads=heads,
        n_kv_heads=int(raw.get("num_key_value_heads") or heads),
        ffn_size=int(_require(raw, "intermediate_size")),
        rope_theta=rope_theta(raw),
        qkv_bias=True,
        tie_embeddings=bool(raw.get("tie_word_embeddings", False)),
        norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        max_seq_len=int(raw.get("max_position_embeddings", 32768)),
        attention="bidirectional",
        infill_layout="in_place",
        logit_shift=bool(raw.get("sdls_logit_shift", logit_shift_default)),
        mask_id=find_mask_id(raw, lookup, tokenizer_config),
        eos_id=eos[0],
        pad_id=raw.get("pad_token_id"),
        # Qwen tokenizers never prepend a BOS (Dream's bos_token_id equals its eos).
        bos_id=None,
        fim_prefix_id=None,
        fim_suffix_id=None,
        fim_middle_id=None,
        extra_stop_ids=eos[1:],
    )


def _qwen2_stored_name(ours: str) -> str:
    return ours if ours == "lm_head.weight" else "model." + ours


def _qwen2_ignorable(name: str) -> bool:
    # Old exports carry RoPE's inv_freq buffer; a tied lm_head is sometimes stored anyway
    # (only consulted for names we do not expect, so an untied lm_head is still loaded).
    return name.endswith("rotary_emb.inv_freq") or name == "lm_head.weight"


DREAM = CheckpointFormat(
    "dream",
    lambda raw, lookup, tc: _qwen2_config(raw, lookup, tc, logit_shift_default=True),
    _qwen2_stored_name,
    _qwen2_ignorable,
)
OPEN_DCODER = CheckpointFormat(
    "open-dcoder (qwen2)",
    lambda raw, lookup, tc: _qwen2_config(raw, lookup, tc, logit_shift_default=True),
    _qwen2_stored_name,
    _qwen2_ignorable,
)


# -- LLaDA ------------------------------------------------------------------------------------------
LLADA_MASK_ID, LLADA_EOS_ID, LLADA_EOT_ID, LLADA_EOT_TOKEN = 126336, 126081, 126348, "<|eot_id|>"

_LLADA_LAYER_NAMES = {
    "self_attn.q_proj": "q_proj",
    "self_attn.k_proj": "k_proj",
    "self_attn.v_proj": "v_proj",
    "self_attn.o_proj": "attn_out",
    "mlp.gate_proj": "ff_proj",  # silu is applied to ff_proj's output: it is the gate
    "mlp.up_proj": "up_proj",
    "mlp.down_proj": "ff_out",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ff_norm",
}
_LLADA_TOP_NAMES = {
    "embed_tokens.weight": "model.transformer.wte.weight",
    "norm.weight": "model.transformer.ln_f.weight",
    "lm_head.weight": "model.transformer.ff_out.weight",
}
_LAYER_RE = re.compile(r"layers\.(\d+)\.(.+)\.(weight|bias)")


def _llada_stored_name(ours: str) -> str:
    if ours in _LLADA_TOP_NAMES:
        return _LLADA_TOP_NAMES[ours]
    match = _LAYER_RE.fullmatch(ours)
    assert match and match.group(2) in _LLADA_LAYER_NAMES, f"no LLaDA name for {ours}"
    layer, module, kind = match.groups()
    return f"model.transformer.blocks.{layer}.{_LLADA_LAYER_NAMES[module]}.{kind}"


def _llada_config(raw: dict, lookup: TokenLookup, tokenizer_config: dict) -> ModelConfig:
    checks = {
        "block_type": ("llama", "llama"),
        "activation_type": ("silu", "silu"),
        "layer_norm_type": ("rms", "rms"),
        "alibi": (False, False),
        "rope": (True, True),
        "include_bias": (False, False),
        "scale_logits": (False, False),
        "attention_layer_norm": (False, False),
        "block_group_size": (1, 1),
        "input_emb_norm": (False, False),
    }
    for key, (default, wanted) in checks.items():
        _reject_if(raw.get(key, default) != wanted, f"{key}={raw.get(key)!r} is not supported (need {wanted!r})")
    d_model, heads = int(_require(raw, "d_model")), int(_require(raw, "n_heads"))
    ffn = raw.get("mlp_hidden_size") or int(raw.get("mlp_ratio", 4)) * d_model
    eos = _ids(raw.get("eos_token_id")) or [LLADA_EOS_ID]
    vocab = int(raw.get("embedding_size") or _require(raw, "vocab_size"))
    eot = lookup(LLADA_EOT_TOKEN)
    if eot is None and vocab > LLADA_EOT_ID:
        eot = LLADA_EOT_ID  # LLaDA's documented end-of-turn id, when the tokenizer names it differently
    return ModelConfig(
        vocab_size=vocab,
        d_model=d_model,
        n_layers=int(_require(raw, "n_layers")),
        n_heads=heads,
        n_kv_heads=int(raw.get("n_kv_heads") or (1 if raw.get("multi_query_attention") else heads)),
        ffn_size=int(ffn),
        rope_theta=float(raw.get("rope_theta", 10000.0)),
        qkv_bias=bool(raw.get("include_qkv_bias", False)),
        tie_embeddings=bool(raw.get("weight_tying", False)),
        norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
        max_seq_len=int(raw.get("max_sequence_length", 4096)),
        attention="bidirectional",
        infill_layout="in_place",
        logit_shift=False,
        mask_id=int(raw.get("mask_token_id", LLADA_MASK_ID)),
        eos_id=eos[0],
        pad_id=raw.get("pad_token_id"),
        bos_id=raw.get("bos_token_id"),
        fim_prefix_id=None,
        fim_suffix_id=None,
        fim_middle_id=None,
        extra_stop_ids=[*eos[1:], *([eot] if eot is not None and eot not in eos else [])],
    )


LLADA = CheckpointFormat("llada", _llada_config, _llada_stored_name, ignorable=lambda name: False)


# -- detection ---------------------------------------------------------------------------------------
_BY_MODEL_TYPE = {"sdls": SDLS, "dream": DREAM, "qwen2": OPEN_DCODER, "llada": LLADA}
_BY_ARCHITECTURE = {"DreamModel": DREAM, "Qwen2ForCausalLM": OPEN_DCODER, "LLaDAModelLM": LLADA}


def detect_format(raw: dict) -> CheckpointFormat:
    model_type = str(raw.get("model_type", "")).lower()
    if model_type in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[model_type]
    for arch in raw.get("architectures") or []:
        if arch in _BY_ARCHITECTURE:
            return _BY_ARCHITECTURE[arch]
    raise FormatError(
        f"unknown model_type {raw.get('model_type')!r} (architectures {raw.get('architectures')!r}); "
        "sdls reads model_type sdls, Dream, qwen2 (Open-dCoder) and llada"
    )
