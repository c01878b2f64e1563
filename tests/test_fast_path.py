"""model/sdls_model/fast_path.py: the fast decoding forward equals Transformer.forward, with and without kernels."""

import pytest
import torch
from kernel_checks import DEVICE

from sdls_model.cache import KVCache
from sdls_model.config import ModelConfig
from sdls_model.fast_path import CapturedStep, FastDecoder, confidence_score, length_bucket, threshold_step
from sdls_model.transformer import CacheIO, Transformer


def tiny_model(seed: int) -> Transformer:
    cfg = ModelConfig.from_name("test-tiny", qkv_bias=True, n_heads=6, n_kv_heads=2, d_model=96)
    return Transformer(cfg).init_weights(seed=seed, std=0.1).to(DEVICE).eval()


def filled_cache(model: Transformer, gen, n_slots: int, max_len: int) -> KVCache:
    cache = KVCache(model.cfg, n_slots, max_len, device=DEVICE)
    cache.k.copy_(torch.randn(cache.k.shape, generator=gen))
    cache.v.copy_(torch.randn(cache.v.shape, generator=gen))
    return cache


def model_forward(model, tokens, positions, cache, slots, cache_lens, new_lens, read_len):
    """What the engine does today: CacheIO reads cache[:read_len], a boolean mask keeps what is valid."""
    B, T = tokens.shape
    valid = torch.cat(
        [
            torch.arange(read_len, device=DEVICE) < cache_lens[:, None],
            torch.arange(T, device=DEVICE) < new_lens[:, None],
        ],
        dim=1,
    )  # (B, R + T)
    mask = valid[:, None, None, :].expand(B, 1, T, read_len + T)
    io = CacheIO(cache, slots=slots, read_len=read_len)
    with torch.no_grad():
        return model(tokens, positions, mask, io)


@pytest.mark.parametrize("kernels", [False, True], ids=["torch", "kernels"])
def test_fast_forward_equals_the_model(kernels, gen, seed):
    model = tiny_model(seed % 1000)
    cache = filled_cache(model, gen, n_slots=3, max_len=40)
    B, T, read_len = 2, 5, 24
    slots = [2, 0]
    tokens = torch.randint(0, model.cfg.vocab_size, (B, T), generator=gen).to(DEVICE)
    cache_lens = torch.tensor([24, 9], device=DEVICE)
    new_lens = torch.tensor([5, 3], device=DEVICE)
    positions = cache_lens[:, None] + torch.arange(T, device=DEVICE)
    want = model_forward(model, tokens, positions, cache, slots, cache_lens, new_lens, read_len)
    decoder = FastDecoder(model, kernels=kernels)
    got = decoder(
        tokens,
        positions,
        cache,
        cache_lens.int(),
        read_len,
        new_lens=new_lens.int(),
        slots=torch.tensor(slots, device=DEVICE),
    )
    valid_rows = torch.arange(T, device=DEVICE) < new_lens[:, None]
    err = (got - want)[valid_rows].abs().max().item()
    assert err < 1e-4, f"max error {err} (seed {seed})"
    # The model still computes the same thing with its weights rebound into the fused buffers.
    again = model_forward(model, tokens, positions, cache, slots, cache_lens, new_lens, read_len)
    assert torch.equal(again, want)


@pytest.mark.parametrize("kernels", [False, True], ids=["torch", "kernels"])
def test_write_stores_the_same_keys_as_cacheio(kernels, gen, seed):
    model = tiny_model(seed % 1000)
    ours, theirs = filled_cache(model, gen, 2, 32), None
    theirs = KVCache(model.cfg, 2, 32, device=DEVICE)
    theirs.k.copy_(ours.k), theirs.v.copy_(ours.v)
    B, T, lens = 2, 4, [10, 3]
    tokens = torch.randint(0, model.cfg.vocab_size, (B, T), generator=gen).to(DEVICE)
    cache_lens = torch.tensor(lens, device=DEVICE)
    positions = cache_lens[:, None] + torch.arange(T, device=DEVICE)
    FastDecoder(model, kernels=kernels)(tokens, positions, ours, cache_lens, 16, write=True)
    io = CacheIO(theirs, slots=[0, 1], read_len=16, writes=[(b, lens[b], 0, T) for b in range(B)])
    valid = torch.cat(
        [torch.arange(16, device=DEVICE) < cache_lens[:, None], torch.ones(B, T, dtype=torch.bool, device=DEVICE)], 1
    )
    with torch.no_grad():
        model(tokens, positions, valid[:, None, None, :].expand(B, 1, T, 16 + T), io)
    assert (ours.k - theirs.k).abs().max() < 1e-4 and (ours.v - theirs.v).abs().max() < 1e-4
    untouched = torch.ones(32, dtype=torch.bool)
    untouched[10:14] = False
    assert torch.equal(ours.k[:, 0, :, untouched], theirs.k[:, 0, :, untouched])


def test_threshold_step_commits_on_the_device(gen, seed):
    model = tiny_model(seed % 1000)
    cfg = model.cfg
    cache = filled_cache(model, gen, 1, 16)
    canvas = torch.full((1, 6), cfg.mask_id, device=DEVICE)
    canvas[0, 2] = 7  # already committed: never revised
    positions = (8 + torch.arange(6, device=DEVICE))[None]
    lens = torch.tensor([8], device=DEVICE)
    for kernels in (False, True):
        decoder = FastDecoder(model, kernels=kernels)
        new, commit = threshold_step(decoder, canvas, positions, cache, lens, 16, threshold=2.0)  # forced commit only
        assert commit.sum().item() == 1 and not commit[0, 2] and new[0, 2] == 7
        new_all, commit_all = threshold_step(decoder, canvas, positions, cache, lens, 16, threshold=0.0)
        assert commit_all[0].tolist() == [True, True, False, True, True, True]
        hidden = decoder(canvas, positions, cache, lens, 16)
        assert torch.equal(new_all[0, [0, 1, 3]], model.logits(hidden)[0, [0, 1, 3]].argmax(-1))


def test_helpers_and_errors():
    assert [length_bucket(n) for n in (0, 1, 256, 257, 1000)] == [256, 256, 256, 512, 1024]
    model = tiny_model(0)
    decoder = FastDecoder(model, kernels=False)
    cache = KVCache(model.cfg, 1, 8, device=DEVICE)
    tokens = torch.zeros(1, 2, dtype=torch.long, device=DEVICE)
    with pytest.raises(ValueError, match="read_len"):
        decoder(tokens, tokens, cache, torch.zeros(1, device=DEVICE), 9)
    with pytest.raises(ValueError, match="unknown confidence"):
        confidence_score(decoder.confidence(torch.randn(2, 5, device=DEVICE)), "nope")
    shifted = Transformer(ModelConfig.from_name("test-tiny", logit_shift=True)).to(DEVICE)
    with pytest.raises(ValueError, match="logit_shift"):
        threshold_step(
            FastDecoder(shifted, kernels=False), tokens, tokens, cache, torch.zeros(1, device=DEVICE), 4, 0.9
        )
    model.to(torch.float64)
    with pytest.raises(RuntimeError, match="moved"):
        decoder(tokens, tokens, cache, torch.zeros(1, device=DEVICE), 4)
    if DEVICE.type != "cuda":
        with pytest.raises(RuntimeError, match="CUDA graphs"):
            CapturedStep(lambda x: x, (torch.zeros(1),))


def test_qk_norm_models_are_refused_and_the_engine_takes_the_plain_path():
    """FastDecoder does not fuse Qwen3's q/k norms: it refuses them, and the engine runs without it."""
    from sdls_model.engine import Engine
    from sdls_model.tokenizer import train_tokenizer

    cfg = ModelConfig.from_name("test-tiny", qk_norm=True, head_dim=24)
    model = Transformer(cfg).init_weights(seed=0).to(DEVICE)
    with pytest.raises(ValueError, match="q/k norms"):
        FastDecoder(model, kernels=False)
    tokenizer = train_tokenizer(["def f(x):\n    return x\n"] * 4, vocab_size=300)
    engine = Engine(model, tokenizer, device=DEVICE, max_context=64, max_new_tokens=8, fast_path=True)
    assert engine.fast is None
