"""The transformer and its static cache: a cached forward equals a full one, the context is
causal (encoding more tokens never changes earlier ones), and block-causal masks do what they say."""

import torch

from sdls_model.cache import KVCache
from sdls_model.config import ModelConfig
from sdls_model.layout import attention_mask, training_layout
from sdls_model.transformer import CacheIO, Transformer


def tiny():
    cfg = ModelConfig.from_name("test-tiny")
    return cfg, Transformer(cfg).init_weights(seed=3).eval()


def causal_mask(T):
    bids = torch.arange(T)[None]
    zeros = torch.zeros(1, T, dtype=torch.bool)
    return attention_mask(bids, zeros, bids, zeros, torch.ones(1, T, dtype=torch.bool))


def test_cached_chunks_equal_one_full_causal_forward():
    cfg, model = tiny()
    T = 20
    tokens = torch.randint(6, cfg.vocab_size, (1, T))
    positions = torch.arange(T)[None]
    with torch.no_grad():
        full = model(tokens, positions, causal_mask(T))
        cache = KVCache(cfg, n_slots=2, max_len=64)
        parts = []
        for lo, hi in [(0, 7), (7, 8), (8, 20)]:
            n = hi - lo
            bids = torch.arange(lo, hi)[None]
            zeros = torch.zeros(1, n + lo, dtype=torch.bool)
            k_bid = torch.cat([torch.full((1, lo), -1), bids], 1)
            mask = attention_mask(bids, zeros[:, :n], k_bid, zeros, torch.ones(1, lo + n, dtype=torch.bool))
            io = CacheIO(cache, [1], lo, [(0, lo, 0, n)])
            parts.append(model(tokens[:, lo:hi], positions[:, lo:hi], mask, io))
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_context_is_causal_and_noisy_blocks_are_invisible_to_clean_tokens():
    cfg, model = tiny()
    c, m, blk = 6, 16, 8
    positions, bids, noisy = training_layout(c, m, blk)
    T = len(positions)
    tokens = torch.randint(6, cfg.vocab_size, (1, T))
    mask = attention_mask(
        torch.tensor([bids]),
        torch.tensor([noisy]),
        torch.tensor([bids]),
        torch.tensor([noisy]),
        torch.ones(1, T, dtype=torch.bool),
    )
    with torch.no_grad():
        base = model(tokens, torch.tensor([positions]), mask)
        changed = tokens.clone()
        changed[0, c + m + 3] = (changed[0, c + m + 3] + 1) % cfg.vocab_size  # a noisy token of block 0
        after = model(changed, torch.tensor([positions]), mask)
    diff = (after - base).abs().amax(-1)[0]
    assert diff[: c + m].max() < 1e-6  # context and clean middle: untouched
    assert diff[c + m : c + m + blk].min() > 1e-6  # its own noisy block: changed, both directions
    assert diff[c + m + blk :].max() < 1e-6  # the next noisy block sees clean block 0 only


def test_block_causal_rule_matches_its_definition():
    bids = torch.tensor([[0, 1, 2, 2, 4, 4, 2, 2, 4, 4]])
    noisy = torch.tensor([[False] * 6 + [True] * 4])
    mask = attention_mask(bids, noisy, bids, noisy, torch.ones(1, 10, dtype=torch.bool))[0, 0]
    for q in range(10):
        for k in range(10):
            qb, kb, qn, kn = bids[0, q], bids[0, k], noisy[0, q], noisy[0, k]
            expected = (not qn and not kn and kb <= qb) or (qn and not kn and kb < qb) or (qn and kn and kb == qb)
            assert bool(mask[q, k]) == bool(expected), (q, k)


def test_explicit_head_dim_and_qk_norm_shape_the_model_and_count_its_parameters():
    """Qwen3 style: head_dim 24 != 64 / 4, per-head q/k norms; the count matches the real tensors."""
    for extra in (dict(), dict(head_dim=24, qk_norm=True), dict(head_dim=24, qkv_bias=True, tie_embeddings=False)):
        cfg = ModelConfig.from_name("test-tiny", **extra)
        model = Transformer(cfg)
        attn = model.layers[0].self_attn
        assert attn.q_proj.weight.shape == (cfg.n_heads * cfg.head_dim, cfg.d_model)
        assert attn.o_proj.weight.shape == (cfg.d_model, cfg.n_heads * cfg.head_dim)
        assert hasattr(attn, "q_norm") == cfg.qk_norm
        unique = {p.data_ptr(): p.numel() for p in model.parameters()}
        assert cfg.num_parameters() == sum(unique.values()), extra
    assert "head_dim" not in ModelConfig.from_name("test-tiny").to_dict()  # derived: not written
    assert ModelConfig.from_name("test-tiny", head_dim=24).to_dict()["head_dim"] == 24


def test_qk_norm_acts_on_each_head_before_rope():
    """The k norm's weight is used: scaling half of each key head changes the output (HF parity is
    tested in test_parity_families.py)."""
    cfg = ModelConfig.from_name("test-tiny", head_dim=24, qk_norm=True)
    model = Transformer(cfg).init_weights(seed=1).eval()
    tokens = torch.randint(6, cfg.vocab_size, (1, 10))
    positions = torch.arange(10)[None]
    with torch.no_grad():
        before = model(tokens, positions)
        model.layers[0].self_attn.k_norm.weight[:12] *= 3.0
        after = model(tokens, positions)
    assert (before - after).abs().max() > 1e-4
