"""The checkpoint formats sdls reads: how each one's config.json and tensor names map onto ours.

A format is three pure functions: does a config.json describe it (`matches`), config.json (+
tokenizer facts) -> ModelConfig, and our parameter name -> the name stored on disk. Which tensors
must exist and their shapes follow from the ModelConfig, and the decoding facts (attention, block
size and alignment, logit shift, threshold, fill-in-the-middle tokens) come from the family table
in families.py, so a new format is a few lines here. Detection reads model_type, architectures and
auto_map, never the folder name.

Formats (facts from the models' public config files and modelling code; see families.py):
- sdls: our own names (HF Qwen2 names without "model."), config.json = ModelConfig.to_dict().
- Hugging Face Llama / Qwen2 / Qwen3 names (everything under "model.", lm_head): Dream /
  Dream-Coder / DiffuCoder (model_type "Dream"), Open-dCoder (Qwen2ForCausalLM; its mask token is
  whatever the tokenizer declares, see `find_mask_id`), Stable-DiffCoder (model_type "llama",
  told apart by architectures / auto_map), SDAR (model_type "sdar", Qwen3), Fast-dLLM v2
  (model_type "Fast_dLLM_Qwen", Qwen2) and Tiny-A2D (model_type "a2d-qwen2" / "a2d-qwen3"). The
  backbone decides biases (Qwen2: q/k/v) and q/k norms (Qwen3). config.json may override the
  family's logit shift and block size with "sdls_logit_shift" / "sdls_block_size", and must say
  "sdls_objective": "bd3lm" for a Tiny-A2D block-diffusion checkpoint (its export does not record it).
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
from .families import FAMILIES, Family, infill_strategy

TokenLookup = Callable[[str], "int | None"]  # token text -> id, None if the tokenizer lacks it


class FormatError(ValueError):
    """config.json does not describe a model this format (or sdls) can run."""


@dataclass(frozen=True)
class CheckpointFormat:
    name: str
    make_config: Callable[[dict, TokenLookup, dict], ModelConfig]  # (config.json, lookup, tokenizer_config) -> cfg
    stored_name: Callable[[str], str]  # our parameter name -> the name on disk
    ignorable: Callable[[str], bool]  # stored names that are harmless leftovers (skipped, not loaded)
    matches: Callable[[dict], bool] = lambda raw: False  # does this config.json describe this format?


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


SDLS = CheckpointFormat("sdls", _sdls_config, lambda ours: ours, lambda name: False, lambda raw: _is(raw, ("sdls",)))


# -- Hugging Face Llama / Qwen2 / Qwen3 names: every family but sdls's own and LLaDA -------------------
BACKBONES = ("llama", "qwen2", "qwen3")


def _int(raw: dict, key: str, default: int | None = None) -> int:
    value = raw.get(key, default)
    if value is None:
        raise FormatError(f"missing field {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise FormatError(f"field {key!r} must be an integer, got {value!r}")
    return int(value)


def _flag(raw: dict, key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise FormatError(f"field {key!r} must be true or false, got {value!r}")
    return value


def _hf_architecture(raw: dict, backbone: str) -> dict:
    """ModelConfig fields of the transformer itself, from a transformers-style config.json."""
    hidden, heads = _int(raw, "hidden_size"), _int(raw, "num_attention_heads")
    _reject_if(heads < 1 or hidden < 1, f"hidden_size {hidden} and num_attention_heads {heads} must be positive")
    _reject_if(
        raw.get("hidden_act", "silu") != "silu", f"hidden_act {raw.get('hidden_act')!r} (only silu is supported)"
    )
    _reject_if(bool(raw.get("use_sliding_window")), "use_sliding_window=true is not supported")
    _reject_if(bool(raw.get("mlp_bias")), "mlp_bias=true is not supported")
    head_dim = raw.get("head_dim")
    if backbone == "qwen2":
        # transformers 4.x's Qwen2 ignores head_dim (hidden / heads): a different value is ambiguous.
        _reject_if(
            head_dim not in (None, hidden // heads),
            f"head_dim {head_dim} != hidden_size / num_attention_heads = {hidden // heads}",
        )
        qkv_bias = True  # Qwen2 always has q/k/v biases (and none on o_proj)
    else:
        # Llama and Qwen3 put attention_bias on o_proj too, which sdls's attention does not have.
        _reject_if(_flag(raw, "attention_bias", False), "attention_bias=true is not supported (o_proj bias)")
        qkv_bias = False
    return dict(
        vocab_size=_int(raw, "vocab_size"),
        d_model=hidden,
        n_layers=_int(raw, "num_hidden_layers"),
        n_heads=heads,
        n_kv_heads=_int(raw, "num_key_value_heads", heads),
        head_dim=_int(raw, "head_dim") if head_dim is not None else None,
        ffn_size=_int(raw, "intermediate_size"),
        rope_theta=rope_theta(raw),
        qkv_bias=qkv_bias,
        qk_norm=backbone == "qwen3",
        tie_embeddings=_flag(raw, "tie_word_embeddings", False),
        norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        max_seq_len=_int(raw, "max_position_embeddings", 32768),
    )


def _family_config(
    raw: dict,
    lookup: TokenLookup,
    tokenizer_config: dict,
    family: Family,
    backbone: str,
    block_size: int | None = None,
) -> ModelConfig:
    """The architecture plus the family's decoding facts (families.py), with config.json's word first
    where it has one (mask_token_id, eos/pad/bos ids, sdls_logit_shift, sdls_block_size)."""
    arch = _hf_architecture(raw, backbone)
    eos = _ids(raw.get("eos_token_id"))
    _reject_if(not eos, "missing field 'eos_token_id'")
    fim = tuple(lookup(text) for text in family.fim) if family.fim else None
    fim_ids = fim if fim is not None and None not in fim else None
    bos = None
    if backbone == "llama" and raw.get("bos_token_id") is not None and _flag(tokenizer_config, "add_bos_token", True):
        bos = _int(raw, "bos_token_id")  # Llama-style tokenizers prepend BOS unless they say otherwise
    stops = [*eos[1:], *(i for i in map(lookup, family.stop_tokens) if i is not None)]
    return ModelConfig(
        **arch,
        attention=family.attention,
        block_size=_int(raw, "sdls_block_size", family.block_size if block_size is None else block_size),
        block_align=family.block_align,
        sub_block_size=family.sub_block_size,
        infill_layout=infill_strategy(family.attention, fim_ids),
        logit_shift=_flag(raw, "sdls_logit_shift", family.logit_shift),
        threshold=family.threshold,
        family=family.name,
        mask_id=find_mask_id(raw, lookup, tokenizer_config, family.mask_tokens),
        eos_id=eos[0],
        pad_id=_int(raw, "pad_token_id") if raw.get("pad_token_id") is not None else None,
        bos_id=bos,
        fim_prefix_id=fim_ids[0] if fim_ids else None,
        fim_suffix_id=fim_ids[1] if fim_ids else None,
        fim_middle_id=fim_ids[2] if fim_ids else None,
        extra_stop_ids=list(dict.fromkeys(i for i in stops if i not in eos[:1])),
    )


def _hf_stored_name(ours: str) -> str:
    return ours if ours == "lm_head.weight" else "model." + ours


def _hf_ignorable(name: str) -> bool:
    # Old exports carry RoPE's inv_freq buffer; a tied lm_head is sometimes stored anyway
    # (only consulted for names we do not expect, so an untied lm_head is still loaded).
    return name.endswith("rotary_emb.inv_freq") or name == "lm_head.weight"


def _hf_format(name: str, matches: Callable[[dict], bool], make_config) -> CheckpointFormat:
    return CheckpointFormat(name, make_config, _hf_stored_name, _hf_ignorable, matches)


def _model_type(raw: dict) -> str:
    value = raw.get("model_type")
    return value.lower() if isinstance(value, str) else ""


def _architectures(raw: dict) -> list[str]:
    value = raw.get("architectures")
    return [a for a in value if isinstance(a, str)] if isinstance(value, list) else []


def _auto_map_targets(raw: dict) -> list[str]:
    """auto_map values ("module.Class", or [tokenizer, fast tokenizer] lists), lower-cased."""
    value = raw.get("auto_map")
    if not isinstance(value, dict):
        return []
    flat = [v for item in value.values() for v in (item if isinstance(item, list) else [item])]
    return [v.lower() for v in flat if isinstance(v, str)]


def _is(raw: dict, model_types: tuple[str, ...] = (), architectures: tuple[str, ...] = ()) -> bool:
    return _model_type(raw) in model_types or any(a in architectures for a in _architectures(raw))


# Dream / Dream-Coder / DiffuCoder: Qwen2 names under "model.", bidirectional, logits shifted.
DREAM = _hf_format(
    "dream",
    lambda raw: _is(raw, ("dream",), ("DreamModel",)),
    lambda raw, lookup, tc: _family_config(raw, lookup, tc, FAMILIES["dream"], "qwen2"),
)
# Open-dCoder: a plain Qwen2ForCausalLM checkpoint that Open-dLLM runs bidirectionally.
OPEN_DCODER = _hf_format(
    "open-dcoder (qwen2)",
    lambda raw: _is(raw, ("qwen2",), ("Qwen2ForCausalLM",)),
    lambda raw, lookup, tc: _family_config(raw, lookup, tc, FAMILIES["open-dcoder"], "qwen2"),
)


def _is_stable_diffcoder(raw: dict) -> bool:
    return any("stablediffcoder" in a.lower() for a in _architectures(raw)) or any(
        "stable_diffcoder" in t or "seed_diffcoder" in t for t in _auto_map_targets(raw)
    )


# Stable-DiffCoder: Llama names (model_type "llama"); only architectures / auto_map tell it apart.
STABLE_DIFFCODER = _hf_format(
    "stable-diffcoder (llama)",
    _is_stable_diffcoder,
    lambda raw, lookup, tc: _family_config(raw, lookup, tc, FAMILIES["stable-diffcoder"], "llama"),
)
# SDAR: Qwen3 names (q/k norms); config.json carries block_size and mask_token_id.
SDAR = _hf_format(
    "sdar (qwen3)",
    lambda raw: _is(raw, ("sdar",), ("SDARForCausalLM",)),
    lambda raw, lookup, tc: _family_config(
        raw, lookup, tc, FAMILIES["sdar"], "qwen3", _int(raw, "block_size", FAMILIES["sdar"].block_size)
    ),
)
# Fast-dLLM v2: Qwen2 names; the block size is config.json's bd_size.
FAST_DLLM_V2 = _hf_format(
    "fast-dllm-v2 (qwen2)",
    lambda raw: (
        _is(raw, ("fast_dllm_qwen",), ("Fast_dLLM_QwenForCausalLM",))
        or any("fast_dllm_qwen" in t for t in _auto_map_targets(raw))
    ),
    lambda raw, lookup, tc: _family_config(
        raw, lookup, tc, FAMILIES["fast-dllm-v2"], "qwen2", _int(raw, "bd_size", FAMILIES["fast-dllm-v2"].block_size)
    ),
)

A2D_OBJECTIVES = {"mdlm": "a2d-mdlm", "bd3lm": "a2d-bd3lm"}


def _a2d_config(raw: dict, lookup: TokenLookup, tokenizer_config: dict) -> ModelConfig:
    # The objective (MDLM: bidirectional; BD3LM: block-causal) is a training choice that dllm's export
    # does not write into config.json, so the user says which with "sdls_objective".
    objective = raw.get("sdls_objective", "mdlm")
    _reject_if(
        not isinstance(objective, str) or objective not in A2D_OBJECTIVES,
        f"sdls_objective {objective!r} is not one of {', '.join(map(repr, A2D_OBJECTIVES))}",
    )
    if _model_type(raw) in ("a2d-qwen2", "a2d-qwen3"):
        backbone = _model_type(raw).removeprefix("a2d-")
    else:  # detected by its architectures
        backbone = "qwen3" if "A2DQwen3LMHeadModel" in _architectures(raw) else "qwen2"
    return _family_config(raw, lookup, tokenizer_config, FAMILIES[A2D_OBJECTIVES[objective]], backbone)


# Tiny-A2D (dllm): Qwen2 / Qwen3 names under their own model_type.
A2D = _hf_format(
    "tiny-a2d",
    lambda raw: _is(raw, ("a2d-qwen2", "a2d-qwen3"), ("A2DQwen2LMHeadModel", "A2DQwen3LMHeadModel")),
    _a2d_config,
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
        attention=FAMILIES["llada"].attention,
        block_size=FAMILIES["llada"].block_size,
        infill_layout="in_place",
        logit_shift=FAMILIES["llada"].logit_shift,
        threshold=FAMILIES["llada"].threshold,
        family="llada",
        mask_id=int(raw.get("mask_token_id", LLADA_MASK_ID)),
        eos_id=eos[0],
        pad_id=raw.get("pad_token_id"),
        bos_id=raw.get("bos_token_id"),
        fim_prefix_id=None,
        fim_suffix_id=None,
        fim_middle_id=None,
        extra_stop_ids=[*eos[1:], *([eot] if eot is not None and eot not in eos else [])],
    )


LLADA = CheckpointFormat(
    "llada", _llada_config, _llada_stored_name, lambda name: False, lambda raw: _is(raw, ("llada",), ("LLaDAModelLM",))
)


# -- detection ---------------------------------------------------------------------------------------
# First match wins: the specific markers (architectures, auto_map) before the generic model types,
# so a Stable-DiffCoder ("llama") or a Fast-dLLM v2 export is never read as something plainer.
FORMATS: list[CheckpointFormat] = [SDLS, STABLE_DIFFCODER, SDAR, FAST_DLLM_V2, A2D, DREAM, LLADA, OPEN_DCODER]
_CAUSAL_ONLY = {"llama", "qwen3", "mistral", "gemma", "gemma2", "phi3"}


def detect_format(raw: dict) -> CheckpointFormat:
    for fmt in FORMATS:
        if fmt.matches(raw):
            return fmt
    if _model_type(raw) in _CAUSAL_ONLY:
        raise FormatError(
            f"model_type {raw.get('model_type')!r} (architectures {raw.get('architectures')!r}) is an autoregressive "
            "model, not a diffusion one; sdls tells Stable-DiffCoder's Llama checkpoints apart by architectures "
            "StableDiffcoderForCausalLM or an auto_map into modeling_stable_diffcoder"
        )
    raise FormatError(
        f"unknown model_type {raw.get('model_type')!r} (architectures {raw.get('architectures')!r}); "
        "sdls reads model_type sdls, Dream, qwen2 (Open-dCoder), llada, sdar, Fast_dLLM_Qwen, a2d-qwen2, a2d-qwen3 "
        "and Stable-DiffCoder (llama with architectures StableDiffcoderForCausalLM)"
    )
