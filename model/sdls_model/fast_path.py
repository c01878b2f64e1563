"""A decoding forward built for speed: fused weights, device-side lengths, Triton kernels.

`FastDecoder(model)` runs the same computation as `Transformer.forward` for the one case that
dominates decoding — a block of up to 64 new tokens attending to a prefix of its KV cache slot and
bidirectionally to itself — but shaped for a CUDA graph:
- cache lengths are device tensors and the cache is read in place (no slice copies, no host syncs);
  only `read_len`, a host-side bound (a length bucket), fixes shapes, so one captured graph serves
  every context length up to its bucket;
- q/k/v and gate/up projections run as one matmul each: the model's weights are rebound as views
  of fused buffers (same values, no extra memory; the model itself behaves exactly as before);
- with kernels on (`sdls_kernels.dispatch.use_kernels`, i.e. CUDA unless SDLS_KERNELS says
  otherwise): fused add + RMSNorm, in-place RoPE on the qkv buffer, split-K block attention,
  SwiGLU on the gate/up buffer and the fused confidence pass. With kernels off the same steps
  run as torch ops (the references).

`threshold_step` is a whole denoising step on the device (forward, logits of the block, confidence,
the threshold commit rule), and `CapturedStep` captures any such step in a CUDA graph.

How the engine uses it: one decoder per model, on CUDA (or with `Engine(..., fast_path=True)`).
A step whose rows are all a block over their cache slot with nothing pending to encode (the exact
cache policy, the previous block already stored) runs its forward here instead of in
`Transformer.forward`. When those rows also decode greedily under the threshold rule (the
product's default), the whole step — this forward, logits, `confidence`, the threshold rule — runs
in engine/graph_step.py on static buffers, captured once per shape with `CapturedStep` and replayed
on CUDA; other such steps take the logits of the positions still masked and apply the engine's own
sampling rule. The engine never writes through the decoder (a finished block is stored by the
next `Transformer.forward`, which encodes it along with the new block). `threshold_step` is the
same greedy step for `sdls bench kernels` (bench_decode.py) and the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sdls_kernels.block_attention import MAX_BLOCK_TOKENS, block_attention
from sdls_kernels.confidence import Confidence, confidence, confidence_ref
from sdls_kernels.dispatch import use_kernels
from sdls_kernels.rmsnorm import add_rmsnorm, add_rmsnorm_ref
from sdls_kernels.rope import inverse_frequencies, rope_
from sdls_kernels.swiglu import swiglu, swiglu_ref

from . import sampling
from .cache import KVCache
from .transformer import Transformer, apply_rope, rope_cos_sin


def unsupported_reason(cfg) -> str | None:
    """Why FastDecoder cannot run this model (the engine then takes the plain path), or None."""
    if cfg.qk_norm:
        return "per-head q/k norms (Qwen3) are not fused"
    return None


def length_bucket(length: int, granularity: int = 256) -> int:
    """The read_len to capture for a context of `length` tokens (a multiple of `granularity`)."""
    return max(granularity, -(-length // granularity) * granularity)


def _fuse(modules: list[torch.nn.Linear], attr: str) -> torch.Tensor | None:
    """Concatenate the modules' `attr` tensors and rebind each module's tensor as a view of the result.

    Idempotent: tensors that already lie back to back in one buffer (an earlier FastDecoder) are
    reused as they are, so several decoders can share one model.
    """
    parts = [getattr(m, attr) for m in modules]
    if any(p is None for p in parts):
        return None
    rows = sum(p.shape[0] for p in parts)
    first = parts[0].detach()
    if all(p.is_contiguous() for p in parts) and len({p.untyped_storage().data_ptr() for p in parts}) == 1:
        offsets = [p.storage_offset() for p in parts]
        sizes = [p.numel() for p in parts]
        if all(offsets[i] + sizes[i] == offsets[i + 1] for i in range(len(parts) - 1)):
            return first.as_strided((rows, *first.shape[1:]), first.stride())
    fused = torch.cat([p.detach() for p in parts], dim=0)
    start = 0
    for part in parts:
        part.data = fused[start : start + part.shape[0]]
        start += part.shape[0]
    return fused


@dataclass
class _LayerWeights:
    ln1: torch.Tensor  # (d,)
    qkv_w: torch.Tensor  # ((H + 2 Hkv) D, d)
    qkv_b: torch.Tensor | None
    o_w: torch.Tensor  # (d, H D)
    ln2: torch.Tensor
    gate_up_w: torch.Tensor  # (2 F, d)
    down_w: torch.Tensor  # (d, F)


class FastDecoder:
    def __init__(self, model: Transformer, kernels: bool | None = None):
        self.model, self.cfg = model, model.cfg
        if unsupported_reason(self.cfg):
            raise ValueError(f"FastDecoder cannot run this model: {unsupported_reason(self.cfg)}")
        device = model.embed_tokens.weight.device
        self.kernels = use_kernels(device) if kernels is None else kernels
        with torch.no_grad():
            self.layers = [
                _LayerWeights(
                    ln1=block.input_layernorm.weight.detach(),
                    qkv_w=_fuse([block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj], "weight"),
                    qkv_b=_fuse([block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj], "bias"),
                    o_w=block.self_attn.o_proj.weight.detach(),
                    ln2=block.post_attention_layernorm.weight.detach(),
                    gate_up_w=_fuse([block.mlp.gate_proj, block.mlp.up_proj], "weight"),
                    down_w=block.mlp.down_proj.weight.detach(),
                )
                for block in model.layers
            ]
        self._bound = model.layers[0].self_attn.q_proj.weight.data_ptr()
        self.inv_freq = inverse_frequencies(self.cfg.head_dim, self.cfg.rope_theta, device=device)

    def _check_bound(self) -> None:
        if self.model.layers[0].self_attn.q_proj.weight.data_ptr() != self._bound:
            raise RuntimeError(
                "the model's weights moved (.to() or a reload) after FastDecoder was built; build a new FastDecoder"
            )

    # -- the pieces, kernel or torch ----------------------------------------------------------------
    def _norm(self, delta, residual, weight):
        if self.kernels:
            return add_rmsnorm(delta, residual, weight, self.cfg.norm_eps)
        return add_rmsnorm_ref(delta, residual, weight, self.cfg.norm_eps)

    def _attend(self, q, k, v, cache: KVCache, layer: int, cache_lens, new_lens, slots, read_len):
        """q (B, H, T, D), k/v (B, Hkv, T, D) -> (B, T, H * D)."""
        B, H, T, D = q.shape
        if self.kernels and T <= MAX_BLOCK_TOKENS:
            out = block_attention(
                q, cache.k[layer], cache.v[layer], k, v, cache_lens, new_lens, slots, read_len=read_len
            )  # (B, H, T, D)
            return out.transpose(1, 2).reshape(B, T, H * D)
        rows = torch.arange(B, device=q.device) if slots is None else slots
        k_cached = cache.k[layer][rows, :, :read_len]  # (B, Hkv, R, D)
        v_cached = cache.v[layer][rows, :, :read_len]
        key_pos = torch.arange(read_len, device=q.device)
        new_pos = torch.arange(T, device=q.device)
        if new_lens is None:
            new_ok = torch.ones(B, T, dtype=torch.bool, device=q.device)
        else:
            new_ok = new_pos < new_lens[:, None]
        valid = torch.cat([key_pos < cache_lens[:, None], new_ok], dim=1)  # (B, R + T)
        out = F.scaled_dot_product_attention(
            q,
            torch.cat([k_cached, k], 2),
            torch.cat([v_cached, v], 2),
            attn_mask=valid[:, None, None, :],
            enable_gqa=k.shape[1] != H,
        )  # (B, H, T, D)
        return out.transpose(1, 2).reshape(B, T, H * D)

    @staticmethod
    def _write(cache: KVCache, layer: int, k, v, cache_lens, slots) -> None:
        """Store the new keys/values (B, Hkv, T, D) at [cache_lens[b], cache_lens[b] + T) of each slot."""
        B, Hkv, T, _ = k.shape
        rows = (torch.arange(B, device=k.device) if slots is None else slots.long())[:, None, None]
        heads = torch.arange(Hkv, device=k.device)[None, :, None]
        pos = (cache_lens.long()[:, None] + torch.arange(T, device=k.device))[:, None, :]  # (B, 1, T)
        cache.k[layer].index_put_((rows, heads, pos), k)
        cache.v[layer].index_put_((rows, heads, pos), v)

    # -- the forward --------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        cache_lens: torch.Tensor,
        read_len: int,
        new_lens: torch.Tensor | None = None,
        slots: torch.Tensor | None = None,
        write: bool = False,
    ) -> torch.Tensor:
        """tokens, positions (B, T) -> final hidden states (B, T, d_model).

        Row b attends to the first cache_lens[b] (<= read_len) keys of slot slots[b] (default b)
        and to its first new_lens[b] new tokens (default all). With `write`, the new tokens' keys and
        values are stored at [cache_lens[b], cache_lens[b] + T) of the slot (the caller keeps that
        inside the cache and advances its lengths by what it committed).
        """
        self._check_bound()
        cfg = self.cfg
        B, T = tokens.shape
        H, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        if not 0 <= read_len <= cache.max_len:
            raise ValueError(f"read_len {read_len} outside the cache (max_len {cache.max_len})")
        if positions.shape != tokens.shape or cache_lens.shape != (B,):
            raise ValueError(
                f"tokens {tuple(tokens.shape)}, positions {tuple(positions.shape)} and "
                f"cache_lens {tuple(cache_lens.shape)} disagree"
            )
        x = F.embedding(tokens, self.model.embed_tokens.weight)  # (B, T, d)
        if not self.kernels:
            cos, sin = rope_cos_sin(positions, D, cfg.rope_theta, x.dtype)  # (B, 1, T, D)
        residual, delta = None, x
        for i, w in enumerate(self.layers):
            y, residual = self._norm(delta, residual, w.ln1)
            qkv = F.linear(y, w.qkv_w, w.qkv_b)  # (B, T, (H + 2 Hkv) D)
            q = qkv[..., : H * D].view(B, T, H, D)
            k = qkv[..., H * D : (H + Hkv) * D].view(B, T, Hkv, D)
            v = qkv[..., (H + Hkv) * D :].view(B, T, Hkv, D)
            if self.kernels:
                rope_(q, k, positions, self.inv_freq)  # in place
                q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, H(kv), T, D) views
            else:
                q, k = apply_rope(q.transpose(1, 2), cos, sin), apply_rope(k.transpose(1, 2), cos, sin)
            v = v.transpose(1, 2)
            attn = self._attend(q, k, v, cache, i, cache_lens, new_lens, slots, read_len)  # (B, T, H D)
            if write:
                self._write(cache, i, k, v, cache_lens, slots)
            y, residual = self._norm(F.linear(attn, w.o_w), residual, w.ln2)
            gate_up = F.linear(y, w.gate_up_w)  # (B, T, 2F)
            delta = F.linear(swiglu(gate_up) if self.kernels else swiglu_ref(gate_up), w.down_w)
        hidden, _ = self._norm(delta, residual, self.model.norm.weight.detach())
        return hidden

    __call__ = forward

    def confidence(self, logits: torch.Tensor) -> Confidence:
        """logits (N, V) -> argmax, prob, entropy, margin (float32), fused when kernels are on."""
        return confidence(logits) if self.kernels else confidence_ref(logits)


def confidence_score(conf: Confidence, kind: str) -> torch.Tensor:
    """The engine's confidence kinds (see sampling.confidence) from the fused statistics."""
    if kind == "prob":
        return conf.prob
    if kind == "margin":
        return conf.margin
    if kind == "entropy":
        return torch.exp(-conf.entropy)
    raise ValueError(f"unknown confidence kind {kind!r}; expected one of {sampling.CONFIDENCE_KINDS}")


@torch.no_grad()
def threshold_step(
    decoder: FastDecoder,
    canvas: torch.Tensor,
    positions: torch.Tensor,
    cache: KVCache,
    cache_lens: torch.Tensor,
    read_len: int,
    threshold: float,
    kind: str = "prob",
    slots: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One greedy denoising step (temperature 0, no top-p), all on the device: canvas (B, T) block tokens with masks ->
    (new canvas, commit mask (B, T)). Commits every masked position with confidence >= threshold
    and at least the most confident one per row (sampling.select_threshold)."""
    if decoder.cfg.logit_shift:
        raise ValueError(
            "threshold_step reads the prediction for position i from row i; a logit_shift model "
            "(Dream) needs the previous row, which the caller must supply"
        )
    B, T = canvas.shape
    hidden = decoder(canvas, positions, cache, cache_lens, read_len, slots=slots)  # (B, T, d)
    logits = decoder.model.logits(hidden).view(B * T, -1)  # (B T, V)
    conf = decoder.confidence(logits)
    masked = canvas == decoder.cfg.mask_id
    score = confidence_score(conf, kind).view(B, T).to(torch.float32)
    commit = sampling.select_threshold(score, masked, threshold)
    return torch.where(commit, conf.token.view(B, T), canvas), commit


class CapturedStep:
    """A step function captured once in a CUDA graph for fixed input shapes.

    `step = CapturedStep(fn, example_inputs)`; `step(*inputs)` copies the inputs into the static
    buffers, replays, and returns the static outputs (overwritten by the next call: clone to keep).
    Host-side arguments (read_len, thresholds) are baked in: capture one per length bucket.
    Graphs that are never replayed concurrently, and whose outputs are consumed before the next
    replay, may share a memory `pool` (torch.cuda.graph_pool_handle()).
    """

    def __init__(self, fn: Callable[..., object], example_inputs: tuple[torch.Tensor, ...], warmup: int = 2, pool=None):
        if not all(t.is_cuda for t in example_inputs):
            raise RuntimeError("CUDA graphs need CUDA tensors")
        self.inputs = tuple(t.clone() for t in example_inputs)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up (allocations, Triton compiles) off the capture
            for _ in range(warmup):
                fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):  # graphs replayed one at a time may share a pool
            self.outputs = fn(*self.inputs)

    def __call__(self, *inputs: torch.Tensor):
        for static, new in zip(self.inputs, inputs):
            static.copy_(new)
        self.graph.replay()
        return self.outputs
