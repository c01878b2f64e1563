"""Engine behaviour on tiny models: determinism, masks filled, cache exactness, reuse, batching,
cancellation, parallel commit, stop tokens, edit jobs. Everything runs on the CPU in seconds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sdls_model.config import ModelConfig
from sdls_model.engine import CancelToken, DecodeSettings, EditJob, Engine, InfillJob
from sdls_model.tokenizer import train_tokenizer
from sdls_model.transformer import Transformer

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i)\n",
    "class A:\n    def __init__(self):\n        self.x = 1\n",
    "x = [1, 2, 3]\nprint(x)\n",
    "def sub(a, b):\n    return a - b\n",
] * 10
FIXED = DecodeSettings(rule="fixed", tokens_per_step=1)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=300)


def make_engine(tokenizer, seed=1, **cfg_overrides) -> Engine:
    torch.manual_seed(0)
    cfg = ModelConfig.from_name("test-tiny", **cfg_overrides)
    # A large init spreads the random model's predictions, so token-level comparisons mean something.
    model = Transformer(cfg).init_weights(seed=seed, std=0.3)
    return Engine(model, tokenizer, max_context=256, max_new_tokens=64, max_batch=4, n_sessions=2)


@pytest.fixture(scope="module")
def engine(tokenizer):
    return make_engine(tokenizer)


def infill(engine, prefix, suffix="", n=24, settings=FIXED, **kw):
    return engine.run([InfillJob(prefix, suffix, n, settings, **kw)])[0]


def test_temperature_zero_is_deterministic_and_seeds_reproduce(engine):
    a = infill(engine, "def add(a, b):\n    return ", "\n")
    b = infill(engine, "def add(a, b):\n    return ", "\n")
    assert a.tokens == b.tokens and a.text == b.text
    hot = DecodeSettings(temperature=1.0, seed=7)
    c, d = infill(engine, "x = ", settings=hot), infill(engine, "x = ", settings=hot)
    e = infill(engine, "x = ", settings=DecodeSettings(temperature=1.0, seed=8))
    assert c.tokens == d.tokens
    assert c.tokens != e.tokens


@pytest.mark.parametrize(
    "rule", [FIXED, DecodeSettings(threshold=0.2), DecodeSettings(rule="fixed", tokens_per_step=3)]
)
def test_every_mask_is_filled(engine, rule):
    result = infill(engine, "for i in range(10):\n    ", n=20, settings=rule)
    assert engine.cfg.mask_id not in result.tokens
    stopped = result.stats.tokens_committed == len(result.tokens) + 1
    assert stopped or len(result.tokens) == 20
    assert result.stats.forwards >= 1


@pytest.mark.parametrize("per_step", [1, 2])
def test_cached_decoding_matches_full_recompute_under_reference_rule(engine, per_step):
    cached = infill(
        engine, "for i in range(", "\n", 24, DecodeSettings(rule="fixed", tokens_per_step=per_step, cache="exact")
    )
    full = infill(
        engine, "for i in range(", "\n", 24, DecodeSettings(rule="fixed", tokens_per_step=per_step, cache="none")
    )
    assert cached.tokens == full.tokens
    assert cached.stats.forwards > engine.cfg.block_size // per_step  # decoded past the first block


def test_reused_context_gives_the_same_tokens_as_a_fresh_encode(tokenizer):
    warm = make_engine(tokenizer)
    infill(warm, "for i in range(10):\n    pri", session="doc")
    typed = infill(warm, "for i in range(10):\n    print(", session="doc")
    fresh = infill(make_engine(tokenizer), "for i in range(10):\n    print(")
    assert typed.tokens == fresh.tokens
    assert typed.stats.reused_tokens > 5
    assert typed.stats.encoded_tokens < fresh.stats.encoded_tokens


def test_batched_equals_one_by_one(engine):
    jobs = [
        InfillJob("def add(a, b):\n    return ", "\n", 16, FIXED),
        InfillJob("class A:\n", "", 20, DecodeSettings(threshold=0.3)),
        InfillJob("x = [1, 2, 3]\nprint(x)\n" * 3, "", 9, FIXED, session="s"),
    ]
    batched = engine.run(jobs)
    alone = [engine.run([job])[0] for job in jobs]
    assert [r.tokens for r in batched] == [r.tokens for r in alone]


class CancelAfter(CancelToken):
    """Reports cancelled from the n-th check on: a cancel that lands mid-job, deterministically."""

    def __init__(self, checks: int):
        super().__init__()
        self.checks = checks

    @property
    def cancelled(self) -> bool:
        self.checks -= 1
        return self.checks < 0


def test_cancel_stops_within_one_step(engine):
    token = CancelToken()
    token.cancel()
    before = infill(engine, "x = ", n=32, cancel=token)
    assert before.cancelled and before.stats.forwards == 0
    mid = infill(engine, "x = ", n=32, cancel=CancelAfter(3))
    assert mid.cancelled and mid.stats.forwards == 3


class EchoModel(nn.Module):
    """A mock model: predicts, with near certainty, the token at each position after `rewrite`
    (masks included), so decoding outcomes are known in advance."""

    def __init__(self, cfg: ModelConfig, rewrite: dict[int, int]):
        super().__init__()
        self.cfg = cfg
        self.anchor = nn.Parameter(torch.zeros(1))
        self.table = torch.arange(cfg.vocab_size)
        for src, dst in rewrite.items():
            self.table[src] = dst

    def forward(self, tokens, positions, mask=None, cache_io=None):
        return nn.functional.one_hot(self.table[tokens], self.cfg.vocab_size).float() * 30.0

    def logits(self, hidden):
        return hidden


def test_threshold_rule_commits_in_parallel_and_stops_at_end_token(tokenizer):
    cfg = ModelConfig.from_name("test-tiny")
    x = tokenizer.encode("x")[0]
    eng = Engine(EchoModel(cfg, {cfg.mask_id: x}), tokenizer, max_context=64, max_new_tokens=64)
    result = eng.run([InfillJob("a = ", "", 40, DecodeSettings(threshold=0.9))])[0]
    assert result.tokens == [x] * 40
    assert result.stats.forwards == 5  # 40 tokens in blocks of 8: one forward per block
    assert result.stats.tokens_per_forward == 8.0

    stop = Engine(EchoModel(cfg, {cfg.mask_id: cfg.eos_id}), tokenizer, max_context=64, max_new_tokens=64)
    ended = stop.run([InfillJob("a = ", "", 40, DecodeSettings(threshold=0.9))])[0]
    assert ended.tokens == [] and ended.text == "" and ended.stats.forwards == 1


def test_edit_job_fixes_the_doubted_token_with_a_minimal_edit(tokenizer):
    cfg = ModelConfig.from_name("test-tiny")
    bad, good = tokenizer.encode("a - b"), tokenizer.encode("a + b")
    assert len(bad) == len(good)
    (i,) = [k for k in range(len(bad)) if bad[k] != good[k]]
    eng = Engine(EchoModel(cfg, {bad[i]: good[i], cfg.mask_id: good[i]}), tokenizer, max_context=64, max_new_tokens=64)
    text = "def f(a, b):\n    return a - b\n"
    start = text.index("a - b")
    result = eng.run([EditJob(text, start, start + 5, edit_threshold=0.5)])[0]
    assert result.text == "a + b"
    assert [(e.start, e.end, e.new_text) for e in result.edits] == [(start + 2, start + 3, "+")]
    assert result.stats.rounds == 1
    assert eng.doubt(text, start, start + 5, 0.5) == [(start + 1, start + 3, pytest.approx(0.0, abs=1e-6))]


def test_marked_span_is_rewritten_even_when_the_model_is_confident(tokenizer):
    cfg = ModelConfig.from_name("test-tiny")
    (x,) = tokenizer.encode("x")
    eng = Engine(EchoModel(cfg, {cfg.mask_id: x}), tokenizer, max_context=64, max_new_tokens=64)
    text = "y = a + b\n"
    region = tokenizer.encode("a + b")
    result = eng.run([EditJob(text, 4, 9, marked=[(8, 9)])])[0]
    # Only the token holding the marked "b" is re-masked; the model fills it with "x".
    assert result.tokens == region[:-1] + [x]
    assert result.text == tokenizer.decode(region[:-1]) + "x"


def test_bidirectional_in_place_model_decodes_with_approximate_cache(tokenizer):
    eng = make_engine(tokenizer, attention="bidirectional", infill_layout="in_place", logit_shift=True)
    approx = infill(eng, "def add(a, b):\n    return ", "\n", 24, DecodeSettings(rule="fixed", cache="auto"))
    reference = infill(eng, "def add(a, b):\n    return ", "\n", 24, DecodeSettings(rule="fixed", cache="none"))
    for result in (approx, reference):
        assert eng.cfg.mask_id not in result.tokens and result.stats.forwards >= 1
    with pytest.raises(ValueError, match="block-causal"):
        infill(eng, "x", settings=DecodeSettings(cache="exact"))


def test_long_context_is_windowed_with_a_stable_cut(engine):
    long_prefix = "".join(f"value_{i} = {i}\n" for i in range(400))
    a = infill(engine, long_prefix, n=8)
    b = infill(engine, long_prefix + "v", n=8)
    assert a.stats.context_tokens <= engine.max_context
    head = lambda p: engine.builder.window(engine.tokenizer.encode(p), [])[0][:50]
    assert head(long_prefix) == head(long_prefix + "v")
    assert b.stats.context_tokens <= engine.max_context


def test_bad_requests_raise_clear_errors(engine):
    with pytest.raises(ValueError, match="threshold"):
        DecodeSettings(threshold=0.0)
    with pytest.raises(ValueError, match="rule"):
        DecodeSettings(rule="greedy")
    with pytest.raises(ValueError, match="ends_in_order 'yes' is not true or false"):
        DecodeSettings(ends_in_order="yes")  # type: ignore[arg-type]  # as a client might send it
    with pytest.raises(ValueError, match="outside the text"):
        engine.run([EditJob("abc", 2, 9)])
    with pytest.raises(TypeError, match="InfillJob or EditJob"):
        engine.run(["not a job"])


@pytest.mark.parametrize("kernels", [False, True])
def test_fast_path_decodes_the_same_tokens(tokenizer, kernels):
    """The FastDecoder (fused weights; Triton kernels under the interpreter when asked) serves the
    steps that are a block over the cache, and changes nothing in what is decoded."""
    from sdls_model.fast_path import FastDecoder

    plain = make_engine(tokenizer)
    fast = make_engine(tokenizer)
    decoder = FastDecoder(fast.model, kernels=kernels)
    calls = []
    fast.batch.fast = lambda *a, **k: calls.append(1) or decoder(*a, **k)
    n = 4 if kernels else 10  # the Triton interpreter is slow: a few steps prove the point
    jobs = [
        InfillJob("def add(a, b):\n    return ", "\n", n, DecodeSettings(threshold=0.3)),
        InfillJob("class A:\n", "", n, FIXED, session="doc"),
    ]
    expected = [r.tokens for r in plain.run(jobs)]
    assert [r.tokens for r in fast.run(jobs)] == expected
    assert calls  # the fast path really served steps


def test_single_line_jobs_end_at_the_first_line_break(tokenizer):
    cfg = ModelConfig.from_name("test-tiny")
    (x,) = tokenizer.encode("x")
    newline = tokenizer.encode("\n")[0]

    class LineModel(EchoModel):
        """Writes `x x x` then a line break, then more x's: a model that would go on past the line."""

        def forward(self, tokens, positions, mask=None, cache_io=None):
            out = torch.where(tokens == cfg.mask_id, torch.full_like(tokens, x), tokens)
            out = torch.where((positions % 8 == 3) & (tokens == cfg.mask_id), torch.full_like(tokens, newline), out)
            return nn.functional.one_hot(out, cfg.vocab_size).float() * 30.0

    eng = Engine(LineModel(cfg, {}), tokenizer, max_context=64, max_new_tokens=64)
    multi = eng.run([InfillJob("a = ", "", 24, DecodeSettings(threshold=0.9))])[0]
    line = eng.run([InfillJob("a = ", "", 24, DecodeSettings(threshold=0.9), single_line=True)])[0]
    assert "\n" in multi.text and "\n" not in line.text
    assert multi.text.startswith(line.text) and line.text and set(line.text) == {"x"}
    assert line.stats.forwards == 1


def test_threshold_rule_pads_after_a_committed_end_token(tokenizer):
    from sdls_model.layout import fim_context

    cfg = ModelConfig.from_name("test-tiny")
    (x,) = tokenizer.encode("x")
    middle_start = len(fim_context(cfg, tokenizer.encode("a ="), []))

    class EndFirst(EchoModel):
        """Sure of an end token at middle offset 5, mildly sure of the padding after it, unsure of
        `x` before it: the order a real model commits in."""

        def forward(self, tokens, positions, mask=None, cache_io=None):
            logits = torch.zeros(*tokens.shape, cfg.vocab_size)
            logits[..., x] = 2.0
            logits[..., 7] = 2.0  # a rival, so `x` is never confident
            logits[..., x] += 0.1
            after = positions > middle_start + 5
            logits[after, cfg.eos_id] = 3.0  # the padding: likelier than `x`, still far from sure
            end = positions == middle_start + 5
            logits[end] = 0.0
            logits[end, cfg.eos_id] = 30.0
            return logits

    eng = Engine(EndFirst(cfg, {}), tokenizer, max_context=64, max_new_tokens=64)
    anywhere = dict(ends_in_order=False)  # the end token commits first, as this model is surest of it
    fast = eng.run([InfillJob("a =", "", 16, DecodeSettings(threshold=0.9, **anywhere))])[0]
    reference = eng.run([InfillJob("a =", "", 16, DecodeSettings(rule="fixed", cache="none", **anywhere))])[0]
    assert fast.tokens == reference.tokens == [x] * 5
    assert fast.stats.forwards == 6  # the end token, then the five uncertain x's
    assert reference.stats.forwards == 8  # the reference rule fills the whole block

    # By default the end token waits for the x's before it, and the answer ends as it commits.
    steps = []
    ordered = eng.run([InfillJob("a =", "", 16, DecodeSettings(threshold=0.9))], on_step=steps.append)[0]
    reference = eng.run([InfillJob("a =", "", 16, DecodeSettings(rule="fixed", cache="none"))])[0]
    assert ordered.tokens == reference.tokens == [x] * 5
    assert ordered.stats.forwards == reference.stats.forwards == 6
    ends_at = [step.committed for step in steps if any(t == cfg.eos_id for _, t in step.committed)]
    assert len(ends_at) == 1 and steps[-1].committed == ends_at[0]  # the end (and its padding) last


def test_an_end_token_waits_until_every_position_before_it_is_written(tokenizer):
    """A model surest of the end two places ahead (as real ones are of a block's far padding) would
    end the answer after `x`: `return math.pi * self.radius **` and then the end, seen on the shipped
    model. Held back, the end commits only after the `y` before it; committed in the same step as
    that `y` once both are sure."""
    from sdls_model.layout import fim_context

    cfg = ModelConfig.from_name("test-tiny")
    (x,), (y,) = tokenizer.encode("x"), tokenizer.encode("y")
    start = len(fim_context(cfg, tokenizer.encode("a ="), []))

    def model_for(y_logit: float):
        class EndAhead(EchoModel):
            def forward(self, tokens, positions, mask=None, cache_io=None):
                logits = torch.zeros(*tokens.shape, cfg.vocab_size)
                logits[..., cfg.eos_id] = 30.0  # sure of the end everywhere after offset 1
                first, second = positions == start, positions == start + 1
                logits[first] = 0.0
                logits[first, x] = 30.0
                logits[second] = 0.0
                # Once the end stands right after it, offset 1 reads as the end too.
                ended = ((positions == start + 2) & (tokens == cfg.eos_id)).any(-1, keepdim=True)
                logits[second, y] = y_logit
                logits[..., cfg.eos_id] += torch.where(second & ended, 30.0, torch.where(second, 1.0, 0.0))
                return logits

        return Engine(EndAhead(cfg, {}), tokenizer, max_context=64, max_new_tokens=64)

    unsure = model_for(2.0)  # `y` likelier than the end at offset 1, far from sure
    early = unsure.run([InfillJob("a =", "", 16, DecodeSettings(threshold=0.9, ends_in_order=False))])[0]
    assert early.tokens == [x]  # the end at offset 2 committed first, then offset 1 became an end too
    steps = []
    held = unsure.run([InfillJob("a =", "", 16, DecodeSettings(threshold=0.9))], on_step=steps.append)[0]
    assert held.tokens == [x, y]
    assert [sorted(t for _, t in step.committed) for step in steps][:2] == [[x], [y]]
    fixed = unsure.run([InfillJob("a =", "", 16, DecodeSettings(rule="fixed", cache="none"))])[0]
    assert fixed.tokens == [x, y]

    sure = model_for(40.0)  # everything sure at once: one step, the end in it
    one = sure.run([InfillJob("a =", "", 16, DecodeSettings(threshold=0.9))])[0]
    assert one.tokens == [x, y] and one.stats.forwards == 1


def test_output_projection_runs_only_on_positions_still_masked(tokenizer):
    """Committed positions need no logits: each forward projects exactly the block's open masks."""
    eng = make_engine(tokenizer)
    projected, steps = [], []
    real_logits = eng.model.logits
    eng.model.logits = lambda hidden: projected.append(hidden.shape[1]) or real_logits(hidden)
    result = eng.run([InfillJob("def add(a, b):\n    return ", "\n", 16, FIXED)], on_step=steps.append)[0]
    open_masks = [len(step.predicted) for step in steps]
    assert result.stats.forwards == len(projected) == len(open_masks) >= 2
    assert projected == open_masks
    assert projected[0] == eng.cfg.block_size and min(projected) < projected[0]
    assert all(len(step.committed) == 1 for step in steps)  # the fixed rule, one token a step


def test_greedy_tokens_do_not_depend_on_which_positions_are_projected(tokenizer):
    """Projecting only the open masks must pick the same tokens as projecting the whole block."""
    eng, full = make_engine(tokenizer), make_engine(tokenizer)
    full._predicted_offsets = lambda row: list(range(row.blk))  # the rule then picks among the masks
    for prefix in ["def add(a, b):\n    return ", "for i in range(10):\n    ", "class A:\n    "]:
        assert infill(eng, prefix, n=24).tokens == infill(full, prefix, n=24).tokens


def test_jobs_run_between_the_steps_of_another_leave_both_results_unchanged(tokenizer):
    """The scheduler runs inline jobs inside a rewrite's steps: both must decode exactly as alone,
    even when they share a document session, and every cache slot is free again afterwards."""
    eng = make_engine(tokenizer)
    text = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    edit = lambda: EditJob(text, 19, 31, session="doc", max_rounds=2)
    inline = lambda: InfillJob("def sub(a, b):\n    return ", "\n", 16, FIXED, session="doc")
    alone_edit, alone_inline = eng.run([edit()])[0], eng.run([inline()])[0]
    nested = []

    def meanwhile():
        if not nested:
            assert eng.idle_slots() == len(eng.slots) - 1
            nested.append(eng.run([inline()])[0])

    together = eng.run([edit()], between_steps=meanwhile)[0]
    assert together.text == alone_edit.text and together.tokens == alone_edit.tokens
    assert nested[0].tokens == alone_inline.tokens
    assert eng.idle_slots() == len(eng.slots) and not eng.busy
    stepped = []
    eng.run([InfillJob("for i in range(10):\n    ", "", 16, FIXED)], between_steps=lambda: stepped.append(1))
    assert len(stepped) >= 2
