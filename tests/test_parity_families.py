"""Forward parity of the 2026 families with their transformers backbone class, under each family's own mask.

Each checkpoint is written in the family's on-disk format (tests/fixtures_families.py) with random
weights of the real layer shapes scaled down, loaded through sdls's loader, and run over a sequence
several blocks long. The reference is transformers' LlamaForCausalLM (Stable-DiffCoder),
Qwen3ForCausalLM (SDAR, Tiny-A2D on Qwen3) or Qwen2ForCausalLM (Fast-dLLM v2, Tiny-A2D on Qwen2)
holding the same tensors, given a 4D mask built from each family's published rule (tests/hf_reference.py).
sdls builds its mask from layout.block_start, the rule its engine decodes with. float32, max relative
error <= 1e-5, for an additive float mask under eager attention and a bool mask under sdpa.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from fixtures_families import write_family
from hf_reference import block_diff_eval, hf_model, reference_logits, staircase_kron, staircase_repeat

from sdls_model.checkpoint import load_checkpoint
from sdls_model.layout import attention_mask, block_origin, block_start

pytest.importorskip("transformers")
torch.set_num_threads(1)
MAX_REL_ERR = 1e-5


def sdls_logits(model, cfg, tokens: torch.Tensor, ctx_len: int) -> torch.Tensor:
    """Our forward over the whole sequence under the engine's block rule (all tokens clean)."""
    T = tokens.shape[1]
    positions = torch.arange(T)[None]
    if cfg.attention == "bidirectional":
        mask = None
    else:
        origin = block_origin(cfg, ctx_len)
        bids = torch.tensor([[block_start(p, cfg.block_size, origin) for p in range(T)]])
        clean = torch.zeros(1, T, dtype=torch.bool)
        mask = attention_mask(bids, clean, bids, clean, torch.ones(1, T, dtype=torch.bool))
    with torch.no_grad():
        return model.logits(model(tokens, positions, mask))


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def sample_tokens(length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 280, (1, length), generator=torch.Generator().manual_seed(seed))


CASES = [  # (id, fixture family, config options, backbone, sequence length, context length)
    ("stable-diffcoder", "stable-diffcoder", {}, "llama", 14, 6),
    ("stable-diffcoder older revision", "stable-diffcoder", {"revision": "older"}, "llama", 14, 6),
    ("sdar b4", "sdar", {}, "qwen3", 14, 5),
    ("sdar b8", "sdar", {"block_size": 8}, "qwen3", 21, 5),
    ("fast-dllm-v2 7b (untied)", "fast-dllm-v2", {}, "qwen2", 80, 45),
    ("fast-dllm-v2 1.5b (tied)", "fast-dllm-v2", {"tie": True}, "qwen2", 80, 45),
    ("tiny-a2d qwen3 mdlm", "a2d-qwen3", {}, "qwen3", 20, 8),
    ("tiny-a2d qwen2 mdlm", "a2d-qwen2", {}, "qwen2", 20, 8),
    ("tiny-a2d qwen3 bd3lm", "a2d-qwen3", {"sdls_objective": "bd3lm"}, "qwen3", 80, 45),
    ("tiny-a2d qwen2 bd3lm", "a2d-qwen2", {"sdls_objective": "bd3lm"}, "qwen2", 80, 45),
]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name,family,options,backbone,length,ctx_len", CASES, ids=[c[0] for c in CASES])
def test_logits_match_transformers_under_the_familys_mask(
    tmp_path, name, family, options, backbone, length, ctx_len, attn
):
    config = write_family(tmp_path / "ck", family, shards=2 if "older" in name else 1, **options)
    cfg, ours, _ = load_checkpoint(tmp_path / "ck")
    from safetensors.torch import load_file

    stored = {}
    for f in sorted((tmp_path / "ck").glob("*.safetensors")):
        stored |= load_file(str(f))
    reference = hf_model(config, backbone, stored, attn)
    tokens = sample_tokens(length, seed=len(name))
    ref = reference_logits(family, config, reference, tokens, ctx_len, attn)
    got = sdls_logits(ours, cfg, tokens, ctx_len)
    assert rel_err(got, ref) <= MAX_REL_ERR, rel_err(got, ref)


def test_the_block_rule_matters_here():
    """The sequences are long enough that a wrong alignment shows: the bd3lm rule differs from the
    sequence-aligned one, and both differ from bidirectional, on these very lengths."""
    T, P, B = 80, 45, 32
    seq = block_diff_eval(T, B)
    gen = torch.tensor([[block_start(k, B, P) <= block_start(q, B, P) for k in range(T)] for q in range(T)])
    assert not torch.equal(seq, gen) and not seq.all() and not gen.all()
    assert torch.equal(staircase_kron(14, 4), staircase_repeat(14, 4)) and not staircase_kron(14, 4).all()
