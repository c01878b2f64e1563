"""The engine decodes each block-causal family as that family's own reference decoder would.

The reference here is independent of sdls's engine and layout: transformers' backbone class holding
the checkpoint's tensors, re-run over the whole sequence at every step under the family's published
mask (tests/hf_reference.py), committing one mask per step (the most confident one of the current
block, or sub-block for Fast-dLLM v2), reading position p from row p - 1 when the family shifts its
logits, and stopping where the engine's rule stops. The engine runs the same rule over its KV cache,
with blocks laid out by its own alignment code, so a wrong block start, a prompt tail left out of the
first block, a shift read from the wrong row or an inexact cache changes the tokens.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from fixtures_families import tokenizer_of, write_family
from hf_reference import hf_model, reference_logits
from safetensors.torch import load_file

from sdls_model.checkpoint import load_checkpoint
from sdls_model.engine import DecodeSettings, Engine, InfillJob

pytest.importorskip("transformers")
torch.set_num_threads(1)
ONE_PER_STEP = DecodeSettings(rule="fixed", tokens_per_step=1)
PREFIX = "def add(a, b):\n    return a +"
SUFFIX = "\n\nprint(add(1, 2))\n"
# A longer file whose encoded context does not end on a block boundary (for Stable-DiffCoder, SDAR and
# Fast-dLLM v2 alike), so that reuse has a partial block to leave out.
LONG_PREFIX = "import os\nimport sys\n\n" * 6 + "x = 1\n" + PREFIX

# (id, fixture family, config options, backbone, block, sub-block, shift, alignment, max new tokens)
FAMILIES = [
    ("stable-diffcoder", "stable-diffcoder", {}, "llama", 4, None, False, "sequence", 10),
    ("sdar", "sdar", {}, "qwen3", 4, None, False, "sequence", 10),
    ("fast-dllm-v2", "fast-dllm-v2", {}, "qwen2", 32, 8, True, "sequence", 40),
    ("tiny-a2d bd3lm", "a2d-qwen3", {"sdls_objective": "bd3lm"}, "qwen3", 32, None, False, "generation", 36),
]


def load(tmp_path, family, options):
    config = write_family(tmp_path / "ck", family, **options)
    cfg, model, tokenizer = load_checkpoint(tmp_path / "ck")
    stored = {}
    for f in sorted((tmp_path / "ck").glob("*.safetensors")):
        stored |= load_file(str(f))
    return config, cfg, model, tokenizer, stored


def reference_context(family: str, prefix: str, suffix: str) -> list[int]:
    """The prompt each family's reference decoder is given for an infill at the cursor."""
    tok = tokenizer_of(family)
    if family == "stable-diffcoder":  # Seed-Coder's SPM fill-in-the-middle, after BOS (id 0)
        ids = {t: tok.token_to_id(t) for t in ("<[fim-prefix]>", "<[fim-suffix]>", "<[fim-middle]>")}
        return [0, ids["<[fim-suffix]>"], *tok.encode(suffix), ids["<[fim-prefix]>"], *tok.encode(prefix)] + [
            ids["<[fim-middle]>"]
        ]
    return tok.encode(prefix)  # the rest complete from the prefix alone


def reference_decode(family, config, hf, context, max_new, block, sub, shift, align, cfg, banned):
    L = len(context)
    end = -(-(L + max_new) // block) * block if align == "sequence" else L + -(-max_new // block) * block
    seq = context + [cfg.mask_id] * (end - L)
    stops = set(cfg.stop_ids)
    while cfg.mask_id in seq:
        first = seq.index(cfg.mask_id)
        start = first // block * block if align == "sequence" else L + (first - L) // block * block
        window = [p for p in range(start, start + block) if seq[p] == cfg.mask_id]
        if sub:
            window = [p for p in window if (p - start) // sub == (first - start) // sub]
        logits = reference_logits(family, config, hf, torch.tensor([seq]), L)[0]
        rows = logits[[max(0, p - 1) if shift else p for p in window]].clone()
        rows[:, banned] = float("-inf")
        probs = rows.softmax(-1)
        best = int(probs.max(-1).values.argmax())
        seq[window[best]] = int(probs[best].argmax())
        for j in range(max(L, start), start + block):  # the engine's stop rule
            if seq[j] == cfg.mask_id:
                break
            if seq[j] in stops:
                return seq[L:j][:max_new]
    return seq[L:][:max_new]


def engine_for(model, tokenizer, **kwargs) -> Engine:
    return Engine(model, tokenizer, max_context=256, max_new_tokens=64, max_batch=2, n_sessions=2, **kwargs)


@pytest.mark.parametrize("cache", ["auto", "none"])
@pytest.mark.parametrize(
    "name,family,options,backbone,block,sub,shift,align,max_new", FAMILIES, ids=[f[0] for f in FAMILIES]
)
def test_engine_decodes_like_the_familys_reference(
    tmp_path, name, family, options, backbone, block, sub, shift, align, max_new, cache
):
    config, cfg, model, tokenizer, stored = load(tmp_path, family, options)
    assert (cfg.block_size, cfg.sub_block_size, cfg.logit_shift, cfg.block_align) == (block, sub, shift, align)
    hf = hf_model(config, backbone, stored)
    context = reference_context(family, PREFIX, SUFFIX)
    if align == "sequence":
        assert len(context) % block, "the prompt's tail must share a block with the first masks"
    never = {cfg.mask_id, cfg.bos_id, cfg.fim_prefix_id, cfg.fim_suffix_id, cfg.fim_middle_id}
    banned = sorted({i for i in never if i is not None} | set(range(tokenizer.vocab_size, cfg.vocab_size)))
    expected = reference_decode(family, config, hf, context, max_new, block, sub, shift, align, cfg, banned)
    settings = DecodeSettings(rule="fixed", tokens_per_step=1, cache=cache)
    result = engine_for(model, tokenizer).run([InfillJob(PREFIX, SUFFIX, max_new, settings)])[0]
    assert result.tokens == expected
    assert result.stats.context_tokens == len(context)


# Exact context reuse while typing: the session keeps the encoded context, and a keystroke later the
# answer equals a fresh encode. Enabled by the attention pattern (block-causal), whatever the format.
TYPED = [("stable-diffcoder", {}), ("sdar", {}), ("fast-dllm-v2", {}), ("a2d-qwen3", {"sdls_objective": "bd3lm"})]


def grown_by(tokenizer, prefix: str, tokens: int) -> str:
    """prefix plus typed code whose tokens extend prefix's by exactly `tokens` (a whole number of blocks
    matters for blocks counted from the cursor)."""
    base = tokenizer.encode(prefix)
    typed = prefix
    for piece in (" + b\n    x = [i for i in range(10)]\n    return x" * 8).split(" "):
        typed += " " + piece if typed != prefix else piece
        ids = tokenizer.encode(typed)
        if ids[: len(base)] == base and len(ids) - len(base) == tokens:
            return typed
    raise AssertionError(f"no continuation of exactly {tokens} tokens")


@pytest.mark.parametrize("family,options", TYPED, ids=[t[0] for t in TYPED])
def test_context_reuse_while_typing_is_exact(tmp_path, family, options):
    _, cfg, model, tokenizer, _ = load(tmp_path, family, options)
    assert cfg.attention == "block_causal"
    long_prefix = LONG_PREFIX
    warm, fresh = engine_for(model, tokenizer), engine_for(model, tokenizer)
    warm.run([InfillJob(long_prefix, SUFFIX, 8, ONE_PER_STEP, session="doc")])
    grow = cfg.block_size if cfg.block_align == "generation" else 3
    typed = grown_by(tokenizer, long_prefix, grow)
    reused = warm.run([InfillJob(typed, SUFFIX, 8, ONE_PER_STEP, session="doc")])[0]
    recomputed = fresh.run([InfillJob(typed, SUFFIX, 8, ONE_PER_STEP)])[0]
    assert reused.tokens == recomputed.tokens
    assert reused.stats.reused_tokens > 20, reused.stats
    assert reused.stats.reused_tokens % cfg.block_size == 0 or cfg.block_align == "generation"


def test_blocks_counted_from_the_cursor_are_not_reused_after_they_moved(tmp_path):
    """Tiny-A2D BD3LM: one more token shifts every context block; reusing any of them would be wrong."""
    _, _, model, tokenizer, _ = load(tmp_path, "a2d-qwen3", {"sdls_objective": "bd3lm"})
    long_prefix = LONG_PREFIX
    warm, fresh = engine_for(model, tokenizer), engine_for(model, tokenizer)
    warm.run([InfillJob(long_prefix, "", 8, ONE_PER_STEP, session="doc")])
    typed = grown_by(tokenizer, long_prefix, 1)
    reused = warm.run([InfillJob(typed, "", 8, ONE_PER_STEP, session="doc")])[0]
    assert reused.stats.reused_tokens == 0
    assert reused.tokens == fresh.run([InfillJob(typed, "", 8, ONE_PER_STEP)])[0].tokens


def test_prefix_only_families_ignore_the_suffix_and_fim_ones_read_it(tmp_path):
    _, _, model, tokenizer, _ = load(tmp_path / "sdar", "sdar", {})
    engine = engine_for(model, tokenizer)
    a, b = (engine.run([InfillJob(PREFIX, s, 8, ONE_PER_STEP)])[0] for s in (SUFFIX, "\nelse:\n    pass\n"))
    assert a.tokens == b.tokens and a.stats.context_tokens == len(tokenizer.encode(PREFIX))
    info = engine.describe()
    assert (info["family"], info["infill_layout"], info["context_reuse"]) == ("sdar", "prefix_only", "exact")
    _, _, model, tokenizer, _ = load(tmp_path / "sdc", "stable-diffcoder", {})
    engine = engine_for(model, tokenizer)
    with_suffix = engine.run([InfillJob(PREFIX, SUFFIX, 8, ONE_PER_STEP)])[0]
    assert with_suffix.stats.context_tokens == len(reference_context("stable-diffcoder", PREFIX, SUFFIX))
    assert engine.describe()["infill"].startswith("fill-in-the-middle tokens")


def test_the_checkpoints_threshold_applies_unless_the_job_sets_one(tmp_path, monkeypatch):
    """Stable-DiffCoder's reference commits at 0.95; a job's own threshold still wins."""
    import sdls_model.sampling as sampling

    _, cfg, model, tokenizer, _ = load(tmp_path, "stable-diffcoder", {})
    engine = engine_for(model, tokenizer)
    seen, real = [], sampling.select_threshold
    monkeypatch.setattr(sampling, "select_threshold", lambda conf, masked, t: seen.append(t) or real(conf, masked, t))
    engine.run([InfillJob(PREFIX, SUFFIX, 4, DecodeSettings())])
    engine.run([InfillJob(PREFIX, SUFFIX, 4, DecodeSettings(threshold=0.5))])
    assert cfg.threshold == 0.95 and seen[0] == 0.95 and seen[-1] == 0.5


@pytest.mark.parametrize("family,options", TYPED, ids=[t[0] for t in TYPED])
def test_edits_and_doubts_stay_inside_their_region(tmp_path, family, options):
    """A sequence-aligned first block holds context tokens too: they are never re-masked or scored."""
    from sdls_model.engine import EditJob

    _, _, model, tokenizer, _ = load(tmp_path, family, options)
    engine = engine_for(model, tokenizer)
    text = LONG_PREFIX + " b\n\nprint(add(1, 2))\n"
    start = text.index("return")
    end = start + len("return a + b")
    result = engine.run([EditJob(text, start, end, max_rounds=2, edit_threshold=0.5)])[0]
    assert all(start <= e.start <= e.end <= end for e in result.edits), result.edits
    spans = engine.doubt(text, start, end, threshold=0.9)
    assert spans and all(start <= s < e <= end for s, e, _ in spans), spans


@pytest.mark.parametrize(
    "family,options",
    [("stable-diffcoder", {}), ("a2d-qwen2", {"sdls_objective": "bd3lm"})],
    ids=["stable-diffcoder (blocks from 0)", "tiny-a2d qwen2 bd3lm (blocks from the cursor)"],
)
def test_the_fast_path_decodes_the_aligned_blocks_as_the_plain_path(tmp_path, family, options):
    """FastDecoder (its torch references here; the same code path as on CUDA) runs the block steps of
    families without q/k norms or a logit shift, the prompt tail of a sequence-aligned block included."""
    _, _, model, tokenizer, _ = load(tmp_path, family, options)
    fast, plain = engine_for(model, tokenizer, fast_path=True), engine_for(model, tokenizer, fast_path=False)
    assert fast.fast is not None and plain.fast is None
    fast_steps, real = [], fast.batch._fast_forward
    fast.batch._fast_forward = lambda rows, wanted: fast_steps.append(len(rows)) or real(rows, wanted)
    for settings in (ONE_PER_STEP, DecodeSettings(threshold=0.3)):
        jobs = [InfillJob(LONG_PREFIX, SUFFIX, 40, settings, session="doc")]
        assert [r.tokens for r in fast.run(jobs)] == [r.tokens for r in plain.run(jobs)]
    assert len(fast_steps) > 10
