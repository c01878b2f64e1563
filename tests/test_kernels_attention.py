"""Block attention kernel vs its references (interpreted on the CPU, compiled on a GPU)."""

import pytest
import torch
import torch.nn.functional as F
from kernel_checks import DEVICE, DTYPES, check_rule, poisoned, randn

from sdls_kernels.block_attention import block_attention, block_attention_ref

# (B, H, Hkv, T, D, S, n_slots, splits, read_len): odd sizes, GQA groups of 1..6, empty caches.
CASES = [
    (1, 4, 4, 1, 16, 8, 1, None, 0),  # no cache at all: the new-token split alone
    (3, 6, 2, 5, 40, 77, 4, None, None),  # head dim 40 pads to 64; rows map to shuffled slots
    (2, 12, 2, 11, 32, 130, 2, 3, 100),  # G*T = 66 rows: two row blocks; read_len bucket < S
    (1, 3, 1, 64, 24, 45, 1, 1, None),  # the largest block, one split
]


def lengths(gen, B, S, T, read_len):
    bound = S if read_len is None else read_len
    cache = torch.randint(0, bound + 1, (B,), generator=gen)
    cache[0] = bound  # one row uses the whole bucket
    new = torch.randint(1, T + 1, (B,), generator=gen)
    if B > 1:
        cache[-1], new[-1] = 0, T  # one row with no cache
    return cache.to(DEVICE), new.to(DEVICE)


def run_case(gen, seed, B, H, Hkv, T, D, S, n_slots, splits, read_len, dtype, use_new_lens=True):
    q = randn(gen, B, H, T, D, dtype=dtype)
    k_cache, v_cache = randn(gen, n_slots, Hkv, S, D, dtype=dtype), randn(gen, n_slots, Hkv, S, D, dtype=dtype)
    k_new, v_new = randn(gen, B, Hkv, T, D, dtype=dtype), randn(gen, B, Hkv, T, D, dtype=dtype)
    cache_lens, new_lens = lengths(gen, B, S, T, read_len)
    new_lens = new_lens if use_new_lens else None
    slots = torch.randperm(n_slots, generator=gen)[:B].to(DEVICE) if n_slots > B else None
    out = poisoned(B, T, H, D, dtype=dtype).transpose(1, 2)
    got = block_attention(
        q, k_cache, v_cache, k_new, v_new, cache_lens, new_lens, slots, read_len=read_len, out=out, splits=splits
    )
    assert got.data_ptr() == out.data_ptr()
    args = (q, k_cache, v_cache, k_new, v_new, cache_lens, new_lens, slots)
    exact = block_attention_ref(*(a.cpu().double() if a is not None and a.is_floating_point() else a for a in args))
    same = block_attention_ref(*args)
    atol = 1e-6 if dtype == torch.float32 else 1e-4
    check_rule(f"attention {dtype} {(B, H, Hkv, T, D, S)}", got, same, exact, atol=atol, seed=seed)
    return got, exact


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])))
def test_matches_fp64_reference(case, dtype, gen, seed):
    B, H, Hkv, T, D, S, n_slots, splits, read_len = case
    if read_len is None:
        read_len = S
    run_case(gen, seed, B, H, Hkv, T, D, S, n_slots, splits, read_len, dtype)


def test_all_new_tokens_valid_by_default(gen, seed):
    run_case(gen, seed, 2, 4, 2, 7, 16, 20, 2, 2, 20, torch.float32, use_new_lens=False)


def test_row_without_any_key_is_zero():
    q = torch.randn(1, 2, 3, 16, device=DEVICE)
    kv = torch.randn(1, 1, 8, 16, device=DEVICE)
    new = torch.randn(1, 1, 3, 16, device=DEVICE)
    zero = torch.zeros(1, dtype=torch.int32, device=DEVICE)
    out = block_attention(q, kv, kv, new, new, zero, zero, out=poisoned(1, 2, 3, 16, dtype=torch.float32))
    assert torch.equal(out.cpu(), torch.zeros(1, 2, 3, 16))


def test_reference_agrees_with_sdpa(gen):
    """The reference itself: same as torch's SDPA with a boolean mask built from the lengths."""
    B, H, Hkv, T, D, S = 2, 6, 3, 5, 8, 12
    q = torch.randn(B, H, T, D, generator=gen)
    kc, vc, kn, vn = (torch.randn(B, Hkv, n, D, generator=gen) for n in (S, S, T, T))
    cache_lens, new_lens = torch.tensor([12, 4]), torch.tensor([5, 2])
    valid = torch.cat([torch.arange(S) < cache_lens[:, None], torch.arange(T) < new_lens[:, None]], 1)
    want = F.scaled_dot_product_attention(
        q.double(),
        torch.cat([kc, kn], 2).double(),
        torch.cat([vc, vn], 2).double(),
        attn_mask=valid[:, None, None, :],
        enable_gqa=True,
    )
    got = block_attention_ref(q.double(), kc.double(), vc.double(), kn.double(), vn.double(), cache_lens, new_lens)
    assert torch.allclose(got, want, atol=1e-12)


def test_bad_inputs_are_clear_errors():
    q = torch.randn(1, 4, 65, 16, device=DEVICE)
    kv = torch.randn(1, 2, 8, 16, device=DEVICE)
    new = torch.randn(1, 2, 65, 16, device=DEVICE)
    lens = torch.zeros(1, dtype=torch.int32, device=DEVICE)
    with pytest.raises(ValueError, match=r"1\.\.64"):
        block_attention(q, kv, kv, new, new, lens)
    q, new = q[:, :, :4], new[:, :, :4]
    with pytest.raises(TypeError, match="float16"):
        block_attention(q.half(), kv, kv, new, new, lens)
    with pytest.raises(ValueError, match="read_len"):
        block_attention(q, kv, kv, new, new, lens, read_len=9)
    with pytest.raises(ValueError, match="multiple"):
        block_attention(q[:, :3], kv, kv, new, new, lens)
    with pytest.raises(ValueError, match="cache_lens"):
        block_attention(q, kv, kv, new, new, lens.float())
