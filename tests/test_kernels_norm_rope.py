"""Fused add + RMSNorm, in-place RoPE and SwiGLU kernels vs their references and the model's own modules."""

import pytest
import torch
from kernel_checks import DEVICE, DTYPES, check_rule, poisoned, randn

from sdls_kernels.rmsnorm import add_rmsnorm, add_rmsnorm_ref
from sdls_kernels.rope import inverse_frequencies, rope_, rope_ref
from sdls_kernels.swiglu import swiglu, swiglu_ref
from sdls_model.config import ModelConfig
from sdls_model.transformer import MLP, RMSNorm, apply_rope, rope_cos_sin

NORM_SHAPES = [(1, 1), (5, 333), (2, 3, 1000), (4, 64)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=str)
@pytest.mark.parametrize("with_residual", [True, False])
def test_add_rmsnorm_matches_fp64_reference(shape, dtype, with_residual, gen, seed):
    x = randn(gen, *shape, dtype=dtype, scale=3.0)
    residual = randn(gen, *shape, dtype=dtype) if with_residual else None
    weight = (1 + randn(gen, shape[-1], scale=0.2)).to(dtype)
    y, h = add_rmsnorm(
        x,
        residual,
        weight,
        1e-6,
        out=poisoned(*shape, dtype=dtype),
        residual_out=poisoned(*shape, dtype=dtype) if with_residual else None,
    )
    y_same, h_same = add_rmsnorm_ref(x, residual, weight, 1e-6)
    h_exact = x.double() + (residual.double() if with_residual else 0)
    y_exact, _ = add_rmsnorm_ref(h_exact, None, weight.double(), 1e-6, compute_dtype=torch.float64)
    check_rule(f"residual {dtype} {shape}", h, h_same, h_exact, atol=0.0, seed=seed)
    check_rule(f"rmsnorm {dtype} {shape}", y, y_same, y_exact, atol=1e-6, seed=seed)
    if not with_residual:
        assert h is x


def test_add_rmsnorm_is_the_models_rmsnorm(gen):
    norm = RMSNorm(96, 1e-6).to(DEVICE)
    with torch.no_grad():
        norm.weight.copy_(1 + randn(gen, 96, scale=0.3))
    x, r = randn(gen, 3, 7, 96), randn(gen, 3, 7, 96)
    y, h = add_rmsnorm(x, r, norm.weight.detach(), norm.eps)
    assert torch.equal(h, x + r)
    assert torch.allclose(y, norm(x + r), atol=1e-6, rtol=1e-6)


def test_add_rmsnorm_in_place_residual_and_mixed_weight_dtype(gen):
    x, r = randn(gen, 4, 50, dtype=torch.float16), randn(gen, 4, 50, dtype=torch.float16)
    weight = 1 + randn(gen, 50, scale=0.1)  # float32 weight, float16 activations
    want_y, want_h = add_rmsnorm_ref(x, r, weight, 1e-5)
    y, h = add_rmsnorm(x, r, weight, 1e-5, residual_out=r)
    assert h is r and torch.equal(r, want_h) and y.dtype == torch.float32
    # the normalised value is rounded to float16 before the weight: one float16 ulp may differ
    assert torch.allclose(y, want_y, atol=2e-3, rtol=0)


def test_add_rmsnorm_bad_inputs():
    x = torch.randn(2, 8, device=DEVICE)
    with pytest.raises(ValueError, match="weight"):
        add_rmsnorm(x, None, torch.ones(7, device=DEVICE), 1e-6)
    with pytest.raises(ValueError, match="residual"):
        add_rmsnorm(x, x.half(), torch.ones(8, device=DEVICE), 1e-6)
    with pytest.raises(TypeError, match="float16"):
        add_rmsnorm(x.long(), None, torch.ones(8, device=DEVICE), 1e-6)


# (B, T, Hq, Hk, D)
ROPE_SHAPES = [(1, 1, 1, 1, 2), (2, 5, 6, 2, 40), (1, 9, 14, 2, 64), (3, 4, 4, 4, 128)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", ROPE_SHAPES, ids=str)
def test_rope_in_place_on_a_fused_qkv_buffer(shape, dtype, gen, seed):
    B, T, Hq, Hk, D = shape
    qkv = randn(gen, B, T, (Hq + 2 * Hk) * D, dtype=dtype)  # what one fused projection returns
    positions = torch.randint(0, 32768, (B, T), generator=gen).to(DEVICE)
    inv_freq = inverse_frequencies(D, 1e6, device=DEVICE)
    q = qkv[..., : Hq * D].view(B, T, Hq, D)
    k = qkv[..., Hq * D : (Hq + Hk) * D].view(B, T, Hk, D)
    before = qkv.clone()
    q_same, k_same = rope_ref(q, positions, inv_freq), rope_ref(k, positions, inv_freq)
    q_exact = rope_ref(q.cpu().double(), positions.cpu(), inv_freq.cpu().double())
    k_exact = rope_ref(k.cpu().double(), positions.cpu(), inv_freq.cpu().double())
    rope_(q, k, positions, inv_freq)
    check_rule(f"rope q {dtype} {shape}", q, q_same, q_exact, atol=1e-6, seed=seed)
    check_rule(f"rope k {dtype} {shape}", k, k_same, k_exact, atol=1e-6, seed=seed)
    assert torch.equal(qkv[..., (Hq + Hk) * D :], before[..., (Hq + Hk) * D :]), "v was touched"


def test_rope_is_the_models_rope(gen):
    B, T, H, D = 2, 6, 3, 32
    x = randn(gen, B, T, H, D)
    positions = torch.randint(0, 5000, (B, T), generator=gen).to(DEVICE)
    cos, sin = rope_cos_sin(positions, D, 1e4, torch.float32)
    want = apply_rope(x.transpose(1, 2), cos, sin).transpose(1, 2)
    got = x.clone()
    rope_(got, torch.empty(B, T, 0, D, device=DEVICE), positions, inverse_frequencies(D, 1e4, device=DEVICE))
    assert torch.allclose(got, want, atol=1e-5)


def test_rope_bad_inputs():
    q = torch.randn(1, 2, 2, 8, device=DEVICE)
    inv = inverse_frequencies(8, 1e4, device=DEVICE)
    with pytest.raises(ValueError, match="positions"):
        rope_(q, q, torch.zeros(1, 3, dtype=torch.long, device=DEVICE), inv)
    with pytest.raises(ValueError, match="inv_freq"):
        rope_(q, q, torch.zeros(1, 2, dtype=torch.long, device=DEVICE), inv.double())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 2), (3, 5, 666), (2, 2050)], ids=str)
def test_swiglu_matches_fp64_reference(shape, dtype, gen, seed):
    gate_up = randn(gen, *shape, dtype=dtype, scale=3.0)
    out = poisoned(*shape[:-1], shape[-1] // 2, dtype=dtype)
    got = swiglu(gate_up, out=out)
    assert got is out
    check_rule(
        f"swiglu {dtype} {shape}", got, swiglu_ref(gate_up), swiglu_ref(gate_up.cpu().double()), atol=1e-6, seed=seed
    )


def test_swiglu_on_fused_projection_is_the_models_mlp_activation(gen):
    cfg = ModelConfig.from_name("test-tiny")
    mlp = MLP(cfg).to(DEVICE)
    x = randn(gen, 2, 3, cfg.d_model)
    fused = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach()
    with torch.no_grad():
        got = mlp.down_proj(swiglu(x @ fused.t()))
        assert torch.allclose(got, mlp(x), atol=1e-5)


def test_swiglu_bad_inputs():
    with pytest.raises(ValueError, match="even"):
        swiglu(torch.randn(2, 5, device=DEVICE))
    with pytest.raises(TypeError, match="float16"):
        swiglu(torch.ones(2, 4, dtype=torch.long, device=DEVICE))
