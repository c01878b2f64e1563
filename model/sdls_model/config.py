"""One configuration for every checkpoint sdls runs: the Qwen2 / LLaMA family plus diffusion facts.

Architecture fields mirror Hugging Face names where they exist so that a config.json maps over with
little ceremony; the diffusion fields (attention pattern, infill layout, logit shift, special ids)
are what tell the engine how to decode with this model.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

ATTENTION_PATTERNS = ("bidirectional", "block_causal")
# How an infill's context is laid out: "fim": markers, middle after the context (suffix visible);
# "in_place": prefix, masks, suffix (bidirectional models); "prefix_only": the prefix alone before
# the middle (a block-causal model without fill-in-the-middle tokens cannot see a suffix).
INFILL_LAYOUTS = ("fim", "in_place", "prefix_only")
# Where the blocks of a block-causal model start: "context": sdls's own layout (the context causal
# token by token, middle blocks counted from the end of the context); "sequence": every block_size
# tokens from position 0 (the prompt's tail shares a block with the first masks); "generation":
# every block_size tokens counted from the start of the middle (backwards through the context).
BLOCK_ALIGNMENTS = ("context", "sequence", "generation")


@dataclass
class ModelConfig:
    vocab_size: int = 16384
    d_model: int = 256  # hidden size
    n_layers: int = 6
    n_heads: int = 8  # query heads
    n_kv_heads: int = 2  # key/value heads (GQA: n_heads % n_kv_heads == 0)
    head_dim: int | None = None  # per-head size; None = d_model // n_heads (Qwen3 sets its own)
    ffn_size: int = 768  # SwiGLU inner size
    rope_theta: float = 10000.0
    qkv_bias: bool = False  # Qwen2 has biases on q/k/v, LLaMA does not
    qk_norm: bool = False  # Qwen3: RMSNorm over each head's queries and keys, before RoPE
    tie_embeddings: bool = True  # lm_head shares the embedding matrix
    norm_eps: float = 1e-6
    max_seq_len: int = 4096  # longest context + middle the engine may lay out

    # Diffusion facts.
    attention: str = "block_causal"  # "bidirectional" (Dream, LLaDA...) or "block_causal" (sdls, SDAR...)
    block_size: int = 32  # tokens decoded in parallel per block (block-causal: the attention block)
    block_align: str = "context"  # where blocks start, see BLOCK_ALIGNMENTS
    sub_block_size: int | None = None  # Fast-dLLM v2: a block's masks are committed sub-block by sub-block
    infill_layout: str = "fim"  # see INFILL_LAYOUTS
    logit_shift: bool = False  # Dream, Fast-dLLM v2: the prediction for position i comes from row i - 1
    threshold: float = 0.9  # the model's own confidence threshold, used when a job does not set one
    family: str = "sdls"  # the published family this config describes (its defaults: families.py)

    # Special token ids (None where a checkpoint has no such token).
    mask_id: int = 0
    eos_id: int = 1  # end of text; also pads the middle of an infill
    pad_id: int | None = None  # defaults to eos_id
    bos_id: int | None = 2
    fim_prefix_id: int | None = 3
    fim_suffix_id: int | None = 4
    fim_middle_id: int | None = 5
    extra_stop_ids: list[int] = field(default_factory=list)  # e.g. LLaDA's <|eot_id|>

    def __post_init__(self) -> None:
        if self.pad_id is None:
            self.pad_id = self.eos_id
        problems = []
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_size", "max_seq_len"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                problems.append(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
            self.head_dim = self.d_model // self.n_heads
        elif not isinstance(self.head_dim, int) or self.head_dim < 1:
            problems.append(f"head_dim must be a positive integer, got {self.head_dim!r}")
            self.head_dim = 2
        if self.n_heads % self.n_kv_heads:
            problems.append(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.n_kv_heads}")
        if self.head_dim % 2:
            problems.append(f"head_dim {self.head_dim} must be even for RoPE")
        if self.attention not in ATTENTION_PATTERNS:
            problems.append(f"attention {self.attention!r} is not one of {ATTENTION_PATTERNS}")
        if self.infill_layout not in INFILL_LAYOUTS:
            problems.append(f"infill_layout {self.infill_layout!r} is not one of {INFILL_LAYOUTS}")
        if self.infill_layout == "fim" and None in (self.fim_prefix_id, self.fim_suffix_id, self.fim_middle_id):
            problems.append("infill_layout 'fim' needs fim_prefix_id, fim_suffix_id and fim_middle_id")
        for name in ("mask_id", "eos_id", "pad_id", "bos_id", "fim_prefix_id", "fim_suffix_id", "fim_middle_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                problems.append(f"{name} {value} is outside the vocabulary (size {self.vocab_size})")
        if self.block_size < 1:
            problems.append(f"block_size must be positive, got {self.block_size}")
        if self.block_align not in BLOCK_ALIGNMENTS:
            problems.append(f"block_align {self.block_align!r} is not one of {BLOCK_ALIGNMENTS}")
        if self.sub_block_size is not None and not (
            1 <= self.sub_block_size <= self.block_size and self.block_size % self.sub_block_size == 0
        ):
            problems.append(f"sub_block_size {self.sub_block_size} must divide block_size {self.block_size}")
        if not 0.0 < self.threshold <= 1.0:
            problems.append(f"threshold must be in (0, 1], got {self.threshold}")
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """Tokens that end an infill's middle when the model commits them."""
        return tuple(dict.fromkeys([self.eos_id, self.pad_id, *self.extra_stop_ids]))

    def layer_matrix_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of one layer's matrices: q, k, v, o and SwiGLU's gate, up and down."""
        d, f = self.d_model, self.ffn_size
        q, kv = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        return [(q, d), (kv, d), (kv, d), (d, q), (f, d), (f, d), (d, f)]

    def layer_matrix_parameters(self) -> int:
        """Weights of the layers' matrices (q, k, v, o and SwiGLU's three), which every fed token multiplies."""
        return self.n_layers * sum(n * k for n, k in self.layer_matrix_shapes())

    def num_parameters(self) -> int:
        d, f = self.d_model, self.ffn_size
        q, kv = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        attn = (
            d * q * 2 + d * kv * 2 + (q + 2 * kv if self.qkv_bias else 0) + (2 * self.head_dim if self.qk_norm else 0)
        )
        per_layer = attn + 3 * d * f + 2 * d
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return self.vocab_size * d + self.n_layers * per_layer + d + head

    # -- (de)serialisation of sdls's own config.json ------------------------------------------
    def to_dict(self) -> dict:
        data = {"model_type": "sdls", **dataclasses.asdict(self)}
        if self.head_dim * self.n_heads == self.d_model:
            del data["head_dim"]  # the derived value: configs written before head_dim existed stay as they were
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"model_type", "architectures", "torch_dtype"})
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_name(cls, name: str, **overrides) -> ModelConfig:
        """Named presets; overrides win."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


# Named shapes. The Qwen2.5 ones exist for benchmarks with random weights (kernels, engine).
PRESETS: dict[str, dict] = {
    "test-tiny": dict(
        vocab_size=320, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=128, max_seq_len=1024, block_size=8
    ),
    "sdls-small": dict(
        vocab_size=16384, d_model=384, n_layers=8, n_heads=6, n_kv_heads=2, ffn_size=1024, max_seq_len=4096
    ),
    "qwen2.5-0.5b": dict(
        vocab_size=151936,
        d_model=896,
        n_layers=24,
        n_heads=14,
        n_kv_heads=2,
        ffn_size=4864,
        rope_theta=1e6,
        qkv_bias=True,
        tie_embeddings=True,
        attention="bidirectional",
        infill_layout="in_place",
        mask_id=151666,
        eos_id=151643,
        bos_id=None,
        fim_prefix_id=None,
        fim_suffix_id=None,
        fim_middle_id=None,
        max_seq_len=32768,
    ),
    "qwen2.5-1.5b": dict(
        vocab_size=151936,
        d_model=1536,
        n_layers=28,
        n_heads=12,
        n_kv_heads=2,
        ffn_size=8960,
        rope_theta=1e6,
        qkv_bias=True,
        tie_embeddings=True,
        attention="bidirectional",
        infill_layout="in_place",
        mask_id=151666,
        eos_id=151643,
        bos_id=None,
        fim_prefix_id=None,
        fim_suffix_id=None,
        fim_middle_id=None,
        max_seq_len=32768,
    ),
    "qwen2.5-7b": dict(
        vocab_size=152064,
        d_model=3584,
        n_layers=28,
        n_heads=28,
        n_kv_heads=4,
        ffn_size=18944,
        rope_theta=1e6,
        qkv_bias=True,
        tie_embeddings=False,
        attention="bidirectional",
        infill_layout="in_place",
        mask_id=151666,
        eos_id=151643,
        bos_id=None,
        fim_prefix_id=None,
        fim_suffix_id=None,
        fim_middle_id=None,
        max_seq_len=32768,
    ),
}
