"""GPU only: the kernels at the real decode shapes in bf16, and the fast path inside a CUDA graph."""

import pytest
import torch
from kernel_checks import DEVICE, check_rule, randn

from sdls_kernels.block_attention import block_attention, block_attention_ref
from sdls_kernels.confidence import confidence, confidence_ref
from sdls_kernels.rmsnorm import add_rmsnorm, add_rmsnorm_ref
from sdls_kernels.rope import inverse_frequencies, rope_, rope_ref

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
BF16 = torch.bfloat16


@pytest.mark.parametrize("vocab", [151936, 152064])
def test_confidence_full_vocabulary(vocab, gen, seed):
    logits = randn(gen, 40, vocab, dtype=BF16, scale=4.0)
    rows = torch.randperm(40, generator=gen)[:32].to(DEVICE)
    got = confidence(logits, rows)
    exact = confidence_ref(logits.cpu(), rows.cpu(), compute_dtype=torch.float64)
    same = confidence_ref(logits, rows)
    assert torch.equal(got.token.cpu(), exact.token)
    for field in ("prob", "entropy", "margin"):
        check_rule(field, getattr(got, field), getattr(same, field), getattr(exact, field), atol=1e-5, seed=seed)


# (B, H, Hkv, D, ctx): the Qwen2.5 0.5B / 1.5B / 7B heads at 1k and 4k context, and a batch with slots.
@pytest.mark.parametrize(
    "B, H, Hkv, D, ctx", [(1, 14, 2, 64, 4096), (1, 12, 2, 128, 1024), (1, 28, 4, 128, 4096), (3, 28, 4, 128, 1500)]
)
def test_block_attention_decode_shapes(B, H, Hkv, D, ctx, gen, seed):
    T, S = 32, ctx + 64
    q = randn(gen, B, H, T, D, dtype=BF16)
    kc, vc = randn(gen, B + 1, Hkv, S, D, dtype=BF16), randn(gen, B + 1, Hkv, S, D, dtype=BF16)
    kn, vn = randn(gen, B, Hkv, T, D, dtype=BF16), randn(gen, B, Hkv, T, D, dtype=BF16)
    lens = torch.randint(ctx // 2, ctx + 1, (B,), generator=gen).to(DEVICE)
    slots = torch.randperm(B + 1, generator=gen)[:B].to(DEVICE)
    got = block_attention(q, kc, vc, kn, vn, lens, None, slots, read_len=ctx)
    args = (q, kc, vc, kn, vn, lens, None, slots)
    exact = block_attention_ref(*(a.double() if a is not None and a.is_floating_point() else a for a in args))
    check_rule("attention", got, block_attention_ref(*args), exact, atol=1e-3, seed=seed)


def test_norm_and_rope_at_7b_width(gen, seed):
    x, r = randn(gen, 32, 3584, dtype=BF16), randn(gen, 32, 3584, dtype=BF16)
    w = 1 + randn(gen, 3584, dtype=BF16, scale=0.1)
    y, _h = add_rmsnorm(x, r, w, 1e-6)
    exact, _ = add_rmsnorm_ref((x.double() + r.double()), None, w.double(), 1e-6, compute_dtype=torch.float64)
    check_rule("rmsnorm", y, add_rmsnorm_ref(x, r, w, 1e-6)[0], exact, atol=1e-3, seed=seed)
    qkv = randn(gen, 1, 32, 36 * 128, dtype=BF16)
    q, k = qkv[..., : 28 * 128].view(1, 32, 28, 128), qkv[..., 28 * 128 : 32 * 128].view(1, 32, 4, 128)
    pos = (4000 + torch.arange(32, device=DEVICE))[None]
    inv = inverse_frequencies(128, 1e6, device=DEVICE)
    same, exact = rope_ref(q, pos, inv), rope_ref(q.double(), pos, inv.double())
    rope_(q, k, pos, inv)
    check_rule("rope", q, same, exact, atol=1e-3, seed=seed)


def test_captured_kernel_step_follows_device_lengths():
    """One graph captured at one cache length replays correctly for another (lengths live on the device)."""
    from sdls_model.cache import KVCache
    from sdls_model.config import ModelConfig
    from sdls_model.fast_path import CapturedStep, FastDecoder
    from sdls_model.transformer import Transformer

    cfg = ModelConfig.from_name("test-tiny", d_model=256, n_heads=4, n_kv_heads=2, n_layers=2)
    model = Transformer(cfg).init_weights(seed=0).to(DEVICE, BF16).eval()
    cache = KVCache(cfg, 1, 512, BF16, DEVICE)
    cache.k.normal_(), cache.v.normal_()
    decoder = FastDecoder(model, kernels=True)
    tokens = torch.randint(0, cfg.vocab_size, (1, 32), device=DEVICE)

    def step(tokens, lens):
        return decoder(tokens, lens[:, None] + torch.arange(32, device=DEVICE), cache, lens, 480)

    captured = CapturedStep(step, (tokens, torch.tensor([400], device=DEVICE)))
    for n in (400, 123, 0):
        lens = torch.tensor([n], device=DEVICE)
        assert torch.equal(captured(tokens, lens), step(tokens, lens)), f"replay at cache length {n}"
