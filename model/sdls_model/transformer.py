"""The transformer: Qwen2/Qwen3/LLaMA blocks (RMSNorm, RoPE, GQA attention, SwiGLU) without a causal mask.

The model knows nothing of sampling or of which tokens are masked. Who attends to whom is the
caller's boolean mask, so one forward serves every pattern sdls uses:
- training: a (B, 1, T, T) mask from `layout.attention_mask` (block-causal or bidirectional);
- decoding: new tokens attend to a slice of a static KV cache plus to each other, and the keys and
  values of the tokens the caller chooses are written into the cache (`CacheIO`).
Parameter names follow Hugging Face's Qwen2 / Qwen3 (without the leading "model."), which makes sdls's
own checkpoints and the Hugging Face style diffusion checkpoints one rename apart. Qwen3's per-head
q/k RMSNorm (`qk_norm`) and a head size of its own (`head_dim`, not always d_model / n_heads) are
config switches.
"""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .cache import KVCache
from .config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """cos/sin tables for integer positions (B, T) -> two (B, 1, T, head_dim) tensors."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    angles = positions.float()[..., None] * inv_freq  # (B, T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (B, T, D), the "rotate half" layout
    return angles.cos().to(dtype)[:, None], angles.sin().to(dtype)[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


@dataclass
class CacheIO:
    """How one forward uses a KVCache.

    Row b of the batch lives in cache slot `slots[b]`. Every new token attends to the first
    `read_len` cache positions of its slot (the caller's mask says which of them are valid) and to
    the new tokens. `writes` lists (row, cache_start, token_start, count): after attention, the
    keys/values of new tokens [token_start, token_start + count) of that row are stored at
    [cache_start, cache_start + count) of its slot. All of it is host-side ints: no syncs.
    """

    cache: KVCache
    slots: list[int]
    read_len: int
    writes: list[tuple[int, int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.slots
        self.contiguous = all(b - a == 1 for a, b in itertools.pairwise(s))
        self.slot_index = None if self.contiguous else torch.tensor(s, device=self.cache.k.device)

    def read(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.cache.k[layer], self.cache.v[layer]  # (slots, Hkv, S, D)
        if self.contiguous:
            lo = self.slots[0]
            return k[lo : lo + len(self.slots), :, : self.read_len], v[lo : lo + len(self.slots), :, : self.read_len]
        return k[self.slot_index, :, : self.read_len], v[self.slot_index, :, : self.read_len]

    def write(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor) -> None:
        for row, dst, src, n in self.writes:
            slot = self.slots[row]
            self.cache.k[layer, slot, :, dst : dst + n] = k_new[row, :, src : src + n]
            self.cache.v[layer, slot, :, dst : dst + n] = v_new[row, :, src : src + n]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        q_dim, kv_dim = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, q_dim, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.d_model, kv_dim, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.d_model, kv_dim, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(q_dim, cfg.d_model, bias=False)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
            self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)

    def forward(self, x, cos, sin, mask, cache_io: CacheIO | None, layer: int):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim)
        if hasattr(self, "q_norm"):  # Qwen3: normalise each head, then rotate
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, H, T, D), (B, Hkv, T, D)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        keys, values = k, v
        if cache_io is not None and cache_io.read_len > 0:
            k_cached, v_cached = cache_io.read(layer)  # (B, Hkv, Lc, D)
            keys, values = torch.cat([k_cached, k], dim=2), torch.cat([v_cached, v], dim=2)
        out = F.scaled_dot_product_attention(
            q, keys, values, attn_mask=mask, enable_gqa=self.n_heads != self.n_kv_heads
        )  # (B, H, T, D)
        if cache_io is not None and cache_io.writes:
            cache_io.write(layer, k, v)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn_size, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn_size, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_size, cfg.d_model, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, mask, cache_io, layer):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache_io, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    @classmethod
    def skeleton(cls, cfg: ModelConfig) -> Transformer:
        """A model on the meta device with no initialisation at all, to be filled by
        `load_state_dict(..., assign=True)`. (Initialising on meta goes through torch's reference
        ops, which import the compiler stack: seconds of start-up for nothing.)"""
        with _no_reset_parameters(), torch.device("meta"):
            return cls(cfg)

    def init_weights(self, seed: int = 0, std: float = 0.02) -> Transformer:
        """GPT-2 style init; output projections scaled by depth so deep stacks start stable."""
        gen = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            else:
                scale = (
                    std / math.sqrt(2 * self.cfg.n_layers)
                    if name.endswith(("o_proj.weight", "down_proj.weight"))
                    else std
                )
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=gen) * scale)
        return self

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache_io: CacheIO | None = None,
    ) -> torch.Tensor:
        """tokens, positions: (B, T) -> final hidden states (B, T, d_model).

        mask: bool, True where a query may attend to a key, (B, 1, T, read_len + T); None means
        every key (all of the cache slice and every new token).
        """
        assert tokens.shape == positions.shape, f"tokens {tuple(tokens.shape)} vs positions {tuple(positions.shape)}"
        x = self.embed_tokens(tokens)
        cos, sin = rope_cos_sin(positions, self.cfg.head_dim, self.cfg.rope_theta, x.dtype)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, cache_io, i)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)


@contextmanager
def _no_reset_parameters():
    saved = nn.Linear.reset_parameters, nn.Embedding.reset_parameters
    nn.Linear.reset_parameters = nn.Embedding.reset_parameters = lambda self: None
    try:
        yield
    finally:
        nn.Linear.reset_parameters, nn.Embedding.reset_parameters = saved
