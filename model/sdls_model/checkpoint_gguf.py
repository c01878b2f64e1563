"""GGUF files (llama.cpp's format) -> an sdls model: config, weights and tokenizer from one file.

API (the same shapes as checkpoint.py, which sends a GGUF path here):
- `is_gguf(path)`: a file that starts with GGUF's magic bytes (never judged by its name).
- `inspect_gguf(path) -> Inspection`: everything checkable without dequantising a weight: the
  architecture (metadata `general.architecture`), the ModelConfig, the tokenizer, every tensor's
  name, type and shape; `problems` lists what stops it loading, each naming the file and tensor.
- `load_gguf(path, device="cpu", dtype=None) -> (ModelConfig, Transformer, Tokenizer)`: raises
  CheckpointError (nothing loaded) for a truncated, partial or mismatched file. dtype None computes
  in float32 (what gguf-py dequantises to).

Architectures, as llama.cpp's converter (convert_hf_to_gguf.py, gguf-py constants) writes them:
- "llama" (e.g. SmolLM2): an autoregressive Llama, family "causal": block-causal with blocks of one
  token and logits shifted, which is exactly next-token prediction. It has no mask token: its BOS
  (else unknown) token stands in, which no used prediction sees (row i-1 does not see position i)
  and which the engine never emits.
- "dream": Qwen2 (q/k/v biases), family "dream"; "llada": Llama-style, family "llada".
The converter reorders the rows of Llama's and LLaDA's q/k projections for its interleaved RoPE
(`permute` in LlamaModel / LLaDAModel.modify_tensors); sdls rotates halves as transformers does, so
the loader undoes that. Dream (NEOX RoPE, like Qwen2) is stored unpermuted.
Metadata read: {arch}.block_count / embedding_length / feed_forward_length / context_length /
vocab_size, attention.head_count(_kv) / key_length / value_length / layer_norm_rms_epsilon,
rope.freq_base / dimension_count / scaling.type (only none or linear with factor 1),
diffusion.shift_logits, and tokenizer.ggml.* (tokens, token_type, merges, pre, special ids).
Weights: F32, F16, BF16 and every quantisation gguf-py can dequantise (Q8_0, Q4_0, Q4_1, Q5_0,
Q5_1, Q2_K..Q6_K, ...), dequantised by gguf-py itself. A tied head is the absent `output.weight`.
Checked: the llama path against llama.cpp itself on the real SmolLM2-135M GGUF
(tests/test_parity_llamacpp.py); all three against transformers on files written as the converter
writes them (tests/test_checkpoint_gguf.py). No real Dream or LLaDA GGUF has been run here (8B).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import CheckpointError, Inspection, expected_shapes
from .checkpoint_files import StoredTensor
from .checkpoint_formats import LLADA_MASK_ID, CheckpointFormat, FormatError
from .config import ModelConfig
from .families import FAMILIES, infill_strategy
from .gguf_tokenizer import tokenizer_from_metadata
from .tokenizer import Tokenizer
from .transformer import Transformer

GGUF_MAGIC = b"GGUF"
# Metadata arrays worth keeping in Inspection.raw (the vocabulary itself is not).
_BIG_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.scores")


def is_gguf(path: str | Path) -> bool:
    path = Path(path)
    try:
        with path.open("rb") as f:
            return path.is_file() and f.read(4) == GGUF_MAGIC
    except OSError:
        return False


# -- architectures ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GGUFArchitecture:
    name: str  # general.architecture
    family: str  # families.py
    qkv_bias: bool  # Qwen2-style q/k/v biases are part of the architecture
    permuted_qk: bool  # llama.cpp's converter interleaved the q/k rows (its NORM RoPE)


ARCHITECTURES = {
    a.name: a
    for a in [
        GGUFArchitecture("llama", "causal", qkv_bias=False, permuted_qk=True),
        GGUFArchitecture("dream", "dream", qkv_bias=True, permuted_qk=False),
        GGUFArchitecture("llada", "llada", qkv_bias=False, permuted_qk=True),
    ]
}

_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_TOP_NAMES = {
    "embed_tokens.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def gguf_name(ours: str) -> str:
    """Our parameter name -> llama.cpp's tensor name (gguf-py's TENSOR_NAMES)."""
    if ours in _TOP_NAMES:
        return _TOP_NAMES[ours]
    _, layer, rest = ours.split(".", 2)  # layers.N.<module>
    return f"blk.{layer}.{_LAYER_NAMES[rest]}"


def _meta(raw: dict, key: str, arch: str, default=None, required: bool = False):
    value = raw.get(key.format(arch=arch), default)
    if required and value is None:
        raise FormatError(f"missing metadata {key.format(arch=arch)!r}")
    return value


def _positive_int(raw: dict, key: str, arch: str, default: int | None = None) -> int:
    value = _meta(raw, key, arch, default, required=True)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise FormatError(f"metadata {key.format(arch=arch)!r} must be a positive integer, got {value!r}")
    return int(value)


def _token_id(raw: dict, key: str, vocab: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < vocab:
        raise FormatError(f"metadata {key!r} = {value!r} is not a token id (vocabulary of {vocab})")
    return int(value)


def _check_rope(raw: dict, arch: str, head_dim: int) -> None:
    kind = _meta(raw, "{arch}.rope.scaling.type", arch, "none")
    factor = float(_meta(raw, "{arch}.rope.scaling.factor", arch, 1.0) or 1.0)
    if kind not in ("none", "linear") or factor != 1.0:
        raise FormatError(f"RoPE scaling {kind!r} (factor {factor}) is not supported (plain RoPE only)")
    rot = _meta(raw, "{arch}.rope.dimension_count", arch, head_dim)
    if rot != head_dim:
        raise FormatError(f"partial RoPE ({arch}.rope.dimension_count {rot} of head size {head_dim}) is not supported")


def _reject_unsupported(raw: dict, arch: str) -> None:
    """Metadata that changes the arithmetic in ways sdls's transformer does not have."""
    for key, neutral in (
        ("{arch}.expert_count", 0),
        ("{arch}.logit_scale", 1.0),
        ("{arch}.attn_logit_softcapping", 0.0),
        ("{arch}.final_logit_softcapping", 0.0),
        ("{arch}.attention.sliding_window", 0),
        ("{arch}.embedding_scale", 1.0),
        ("{arch}.residual_scale", 1.0),
    ):
        value = _meta(raw, key, arch)
        if value is not None and value != neutral:
            raise FormatError(f"metadata {key.format(arch=arch)!r} = {value!r} is not supported")


def gguf_config(raw: dict, lookup, tensor_names: set[str]) -> ModelConfig:
    """GGUF metadata (Inspection.raw), the tokenizer's lookup and the stored tensor names -> ModelConfig."""
    arch_name = raw.get("general.architecture")
    arch = ARCHITECTURES.get(arch_name)  # type: ignore[arg-type]
    if arch is None:
        raise FormatError(
            f"general.architecture {arch_name!r} is not one sdls reads from GGUF ({', '.join(ARCHITECTURES)})"
        )
    a = arch.name
    _reject_unsupported(raw, a)
    d_model, heads = (
        _positive_int(raw, "{arch}.embedding_length", a),
        _positive_int(raw, "{arch}.attention.head_count", a),
    )
    head_dim = _positive_int(raw, "{arch}.attention.key_length", a, d_model // heads if d_model % heads == 0 else None)
    value_dim = _positive_int(raw, "{arch}.attention.value_length", a, head_dim)
    if value_dim != head_dim:
        raise FormatError(f"key length {head_dim} != value length {value_dim} is not supported")
    _check_rope(raw, a, head_dim)
    n_tokens = len(raw.get("tokenizer.ggml.tokens") or ()) or None
    vocab = _positive_int(raw, "{arch}.vocab_size", a, n_tokens)
    family = FAMILIES[arch.family]
    eos = _token_id(raw, "tokenizer.ggml.eos_token_id", vocab)
    if eos is None:
        raise FormatError("missing metadata 'tokenizer.ggml.eos_token_id'")
    mask = _token_id(raw, "tokenizer.ggml.mask_token_id", vocab)
    for text in family.mask_tokens if mask is None else ():
        mask = lookup(text)
        if mask is not None:
            break
    if mask is None and arch.family == "llada" and vocab > LLADA_MASK_ID:
        mask = LLADA_MASK_ID  # LLaDA's documented mask id; older conversions do not record it
    if mask is None and arch.family == "causal":
        # Never read by a prediction that is used (see the docstring), but never emitted either: the
        # start-of-sequence token, which a completion does not want, else the unknown token.
        spare = [_token_id(raw, k, vocab) for k in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.unknown_token_id")]
        mask = next((i for i in spare if i is not None and i != eos), None)
    if mask is None:
        raise FormatError(f"no mask token: no 'tokenizer.ggml.mask_token_id' and none of {family.mask_tokens}")
    stops = [_token_id(raw, key, vocab) for key in ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id")]
    stops += [lookup(text) for text in family.stop_tokens]
    shift = raw.get("diffusion.shift_logits")
    add_bos = bool(raw.get("tokenizer.ggml.add_bos_token", False))
    pad = _token_id(raw, "tokenizer.ggml.padding_token_id", vocab)
    return ModelConfig(
        vocab_size=vocab,
        d_model=d_model,
        n_layers=_positive_int(raw, "{arch}.block_count", a),
        n_heads=heads,
        n_kv_heads=_positive_int(raw, "{arch}.attention.head_count_kv", a, heads),
        head_dim=head_dim,
        ffn_size=_positive_int(raw, "{arch}.feed_forward_length", a),
        rope_theta=float(_meta(raw, "{arch}.rope.freq_base", a, 10000.0)),
        qkv_bias=arch.qkv_bias or "blk.0.attn_q.bias" in tensor_names,
        tie_embeddings="output.weight" not in tensor_names,
        norm_eps=float(_meta(raw, "{arch}.attention.layer_norm_rms_epsilon", a, 1e-6)),
        max_seq_len=_positive_int(raw, "{arch}.context_length", a, 4096),
        attention=family.attention,
        block_size=family.block_size,
        block_align=family.block_align,
        sub_block_size=family.sub_block_size,
        infill_layout=infill_strategy(family.attention, None),
        logit_shift=family.logit_shift if shift is None else bool(shift),
        threshold=family.threshold,
        family=family.name,
        mask_id=mask,
        eos_id=eos,
        pad_id=pad,
        bos_id=_token_id(raw, "tokenizer.ggml.bos_token_id", vocab) if add_bos else None,
        fim_prefix_id=None,
        fim_suffix_id=None,
        fim_middle_id=None,
        extra_stop_ids=list(dict.fromkeys(i for i in stops if i is not None and i != eos)),
    )


def _format_for(arch_name: str, tensor_names: set[str]) -> CheckpointFormat:
    return CheckpointFormat(
        f"gguf ({arch_name})",
        lambda raw, lookup, _tokenizer_config: gguf_config(raw, lookup, tensor_names),
        gguf_name,
        lambda name: False,
        lambda raw: raw.get("general.architecture") == arch_name,
    )


# -- reading the file -------------------------------------------------------------------------------
@functools.cache
def _reader_class():
    """gguf-py's reader, told to skip (and list) tensors whose data lies past the end of the file
    instead of failing on the first with a bare reshape error."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader

    class CheckedReader(GGUFReader):
        def _build_fields(self, offs, count):
            # Slicing a plain view of the mapped file is ~10x faster than slicing the np.memmap,
            # which matters for the ~100k parts of a vocabulary (the mapping stays alive as its base).
            self.data = self.data.view(np.ndarray)
            return super()._build_fields(offs, count)

        def _build_tensors(self, start_offs, fields):
            self.truncated: list[str] = []
            self.unknown_types: list[tuple[str, int]] = []
            kept = []
            for field in fields:
                _len, name_data, _n_dims, dims, raw_dtype, offset = field.parts
                name = bytes(name_data).decode("utf-8", errors="replace")
                try:
                    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(int(raw_dtype[0]))]
                except (ValueError, KeyError):
                    self.unknown_types.append((name, int(raw_dtype[0])))
                    continue
                n_bytes = int(np.prod([int(d) for d in dims])) * type_size // block
                if start_offs + int(offset[0]) + n_bytes > len(self.data):
                    self.truncated.append(name)
                else:
                    kept.append(field)
            super()._build_tensors(start_offs, kept)

    return CheckedReader


def _metadata(reader) -> dict:
    raw = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or not field.types:
            continue
        raw[key] = field.contents()
        if isinstance(raw[key], np.generic):
            raw[key] = raw[key].item()
    return raw


def _open(path: Path, problems: list[str]):
    try:
        reader = _reader_class()(path)
    except Exception as exc:  # gguf-py raises ValueError / KeyError / IndexError on a damaged header
        problems.append(f"{path}: not a readable GGUF file: {exc}")
        return None
    problems += [
        f"{path}: tensor {name!r} is cut short: its data lies past the end of the file (truncated file)"
        for name in reader.truncated
    ]
    problems += [f"{path}: tensor {name!r} has unknown GGML type {code}" for name, code in reader.unknown_types]
    return reader


@functools.cache
def dequantisable_types() -> frozenset[str]:
    """The GGML type names gguf-py can turn into floats (F32, F16 and its registry of quant types)."""
    from gguf import quants

    return frozenset({"F32", "F16"} | {t.name for t in quants._type_traits})


def inspect_gguf(path: str | Path) -> Inspection:
    """Everything about a GGUF file that can be checked without dequantising a weight."""
    return _inspect(Path(path))[0]


def _inspect(path: Path):
    found = Inspection(path)
    problems = found.problems
    if not path.is_file():
        problems.append(f"{path}: does not exist" if not path.exists() else f"{path}: not a file")
        return found, None
    reader = _open(path, problems)
    if reader is None:
        return found, None
    raw = found.raw = _metadata(reader)
    try:
        found.tokenizer = tokenizer_from_metadata(raw)
    except ValueError as exc:
        problems.append(f"{path}: {exc}")
    stored = {t.name: t for t in reader.tensors}
    names = set(stored) | set(reader.truncated)
    try:
        lookup = found.tokenizer.token_to_id if found.tokenizer else (lambda text: None)
        found.cfg = gguf_config(raw, lookup, names)
        found.fmt = _format_for(str(raw.get("general.architecture")), names)
    except (FormatError, ValueError, TypeError) as exc:
        problems.append(f"{path}: {exc}")
    for key in _BIG_ARRAYS:
        raw.pop(key, None)
    if found.cfg is not None and found.tokenizer is not None and found.tokenizer.vocab_size > found.cfg.vocab_size:
        problems.append(f"{path}: {found.tokenizer.vocab_size} tokens but a vocabulary of {found.cfg.vocab_size}")
    if found.cfg is not None:
        found.tensors = _match(path, found.cfg, stored, set(reader.truncated), problems)
    return found, reader


def _match(path: Path, cfg: ModelConfig, stored: dict, truncated: set[str], problems: list[str]) -> dict:
    matched: dict[str, StoredTensor] = {}
    shapes = expected_shapes(cfg)
    wanted = {gguf_name(ours): ours for ours in shapes}
    usable = dequantisable_types()
    for name, ours in wanted.items():
        tensor = stored.get(name)
        if tensor is None:
            if name not in truncated:
                problems.append(f"{path}: tensor {name!r} is missing")
            continue
        shape = tuple(int(d) for d in reversed(tensor.shape))  # GGML lists the fastest dimension first
        kind = tensor.tensor_type.name
        if shape != shapes[ours]:
            problems.append(
                f"{path}: tensor {name!r} has shape {list(shape)}, the metadata implies {list(shapes[ours])}"
            )
        elif kind not in usable:
            problems.append(f"{path}: tensor {name!r} is stored as {kind}, which gguf cannot dequantise")
        else:
            matched[ours] = StoredTensor(name, path, kind, shape)
    for name in sorted(set(stored) - set(wanted)):
        problems.append(f"{path}: unexpected tensor {name!r} (not part of this {cfg.family} model)")
    return matched


# -- loading ----------------------------------------------------------------------------------------
def unpermute_qk(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's `permute` (rows (head, 2, d/2) -> (head, d/2, 2)): back to rotate-half order."""
    rows = weight.shape[0]
    return weight.reshape(n_heads, rows // n_heads // 2, 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def _dequantise(tensor) -> np.ndarray:
    from gguf import quants

    return quants.dequantize(tensor.data, tensor.tensor_type)


def load_gguf(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[ModelConfig, Transformer, Tokenizer]:
    """Load a GGUF file as an sdls model. Raises CheckpointError before dequantising anything if the
    file is incomplete or inconsistent, and before returning a model if a weight is NaN or inf."""
    found, reader = _inspect(Path(path))
    if found.problems:
        raise CheckpointError(found.directory, found.problems)
    cfg, tokenizer = found.cfg, found.tokenizer
    assert cfg is not None and tokenizer is not None and reader is not None and found.raw is not None
    dtype = torch.float32 if dtype is None else dtype
    arch = ARCHITECTURES[found.raw["general.architecture"]]
    by_name = {t.name: t for t in reader.tensors}
    state, bad = {}, []
    for ours, stored in found.tensors.items():
        try:
            tensor = torch.from_numpy(np.array(_dequantise(by_name[stored.name]), np.float32)).reshape(stored.shape)
        except Exception as exc:  # a damaged block gguf-py cannot decode
            raise CheckpointError(found.directory, [f"{found.directory}: tensor {stored.name!r}: {exc}"]) from exc
        if arch.permuted_qk and ours.endswith(("q_proj.weight", "q_proj.bias")):
            tensor = unpermute_qk(tensor, cfg.n_heads)
        elif arch.permuted_qk and ours.endswith(("k_proj.weight", "k_proj.bias")):
            tensor = unpermute_qk(tensor, cfg.n_kv_heads)
        if not np.isfinite(tensor.numpy()).all():  # numpy's check is ~10x faster than torch's here
            bad.append(f"{found.directory}: tensor {stored.name!r} contains NaN or infinite values")
        state[ours] = tensor.to(dtype=dtype, device=device)
    if bad:
        raise CheckpointError(found.directory, bad)
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    model = Transformer.skeleton(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    return cfg, model.eval(), tokenizer
