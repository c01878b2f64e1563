"""The decoding rules as pure functions."""

import math

import pytest
import torch

from sdls_model import sampling


@pytest.mark.parametrize("count,steps,expected", [(8, 8, [1] * 8), (8, 3, [3, 3, 2]), (5, 1, [5]), (0, 2, [0, 0])])
def test_transfer_schedule_spreads_masks_evenly(count, steps, expected):
    assert sampling.transfer_schedule(count, steps) == expected
    assert sum(sampling.transfer_schedule(count, steps)) == count


def test_fixed_rule_commits_the_k_most_confident_masked_positions():
    conf = torch.tensor([[0.1, 0.9, 0.5, 0.99, 0.3]], dtype=torch.float64)
    masked = torch.tensor([[True, True, True, False, True]])
    chosen = sampling.select_fixed(conf, masked, torch.tensor([2]))
    assert chosen.tolist() == [[False, True, True, False, False]]  # 0.99 is not masked


def test_threshold_rule_commits_all_confident_and_at_least_one():
    masked = torch.tensor([[True, True, True, False], [True, True, False, False]])
    conf = torch.tensor([[0.95, 0.2, 0.91, 0.99], [0.3, 0.4, 0.99, 0.1]], dtype=torch.float64)
    chosen = sampling.select_threshold(conf, masked, 0.9)
    assert chosen.tolist() == [[True, False, True, False], [False, True, False, False]]
    none_left = sampling.select_threshold(conf, torch.zeros_like(masked), 0.9)
    assert not none_left.any()


def test_confidence_kinds():
    probs = torch.tensor([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)
    cand = torch.tensor([0, 1])
    assert sampling.confidence(probs, cand, "prob").tolist() == pytest.approx([0.7, 1 / 3])
    assert sampling.confidence(probs, cand, "margin").tolist() == pytest.approx([0.5, 0.0])
    entropy = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert sampling.confidence(probs, cand, "entropy").tolist() == pytest.approx([math.exp(-entropy), 1 / 3])
    with pytest.raises(ValueError):
        sampling.confidence(probs, cand, "vibes")


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64))
    kept = torch.isfinite(sampling.top_p_filter(logits, 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(sampling.top_p_filter(logits, 1.0)).all()


def test_gumbel_sampling_follows_the_distribution_and_argmax_at_zero_temperature():
    logits = torch.log(torch.tensor([[[0.6, 0.3, 0.1]]], dtype=torch.float64)).expand(1, 4000, 3).contiguous()
    gen = torch.Generator().manual_seed(0)
    cand, _ = sampling.propose(logits, temperature=1.0, generators=[gen])
    freq = torch.bincount(cand.flatten(), minlength=3).double() / cand.numel()
    assert freq.tolist() == pytest.approx([0.6, 0.3, 0.1], abs=0.03)
    greedy, conf = sampling.propose(logits, temperature=0.0)
    assert (greedy == 0).all() and conf[0, 0].item() == pytest.approx(0.6)
