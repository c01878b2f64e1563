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


def test_an_end_commits_only_where_every_position_before_it_is_decided():
    T, F = True, False

    def held(chosen, conf, masked, ends):
        b = lambda xs: torch.tensor([xs], dtype=torch.bool)
        offsets = torch.arange(len(conf))[None]
        out = sampling.hold_back_ends(b(chosen), torch.tensor([conf], dtype=torch.float64), b(masked), b(ends), offsets)
        return out[0].tolist()

    # The rule's only pick is an end two places ahead: held back; the likeliest other mask commits.
    assert held([F, F, T, F], [0.4, 0.2, 0.9, 0.3], [T, T, T, T], [F, T, T, T]) == [T, F, F, F]
    # An end chosen in the same step as every mask before it stays (so does what follows it).
    assert held([T, T, T, T], [0.95, 0.95, 0.95, 0.95], [T, T, T, T], [F, T, T, T]) == [T, T, T, T]
    # An end at the first open position is free to commit; one past an open mask is not.
    assert held([F, T, F, T], [0.0, 0.9, 0.1, 0.9], [F, T, T, T], [F, T, F, T]) == [F, T, F, F]
    # Decided positions (already written) do not hold an end back; non-end picks are never dropped.
    assert held([F, F, T, T], [0.0, 0.0, 0.9, 0.8], [F, F, T, T], [F, F, F, T]) == [F, F, T, T]
    # Every choice an end behind open masks, every other mask an end too: the first open one commits.
    assert held([F, F, T], [0.1, 0.2, 0.9], [T, T, T], [T, T, T]) == [T, F, F]
    # No masks left: nothing to commit, nothing forced.
    assert held([F, F], [0.0, 0.0], [F, F], [T, T]) == [F, F]


def test_ends_are_held_back_per_row_of_a_batch():
    chosen = torch.tensor([[False, True], [False, True]])
    conf = torch.tensor([[0.3, 0.9], [0.3, 0.9]], dtype=torch.float64)
    masked = torch.ones(2, 2, dtype=torch.bool)
    ends = torch.tensor([[False, True], [False, False]])  # row 1's pick is no end
    out = sampling.hold_back_ends(chosen, conf, masked, ends, torch.arange(2)[None])
    assert out.tolist() == [[True, False], [False, True]]
