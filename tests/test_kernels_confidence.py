"""Fused confidence kernel vs its references (interpreted on the CPU, compiled on a GPU)."""

import pytest
import torch
from kernel_checks import DEVICE, DTYPES, check_rule, poisoned, randn

from sdls_kernels.confidence import Confidence, confidence, confidence_ref

# (rows, vocab, splits, pad): pad adds unused columns so rows are strided.
SHAPES = [(1, 1, None, 0), (3, 257, None, 0), (7, 1000, 3, 13), (5, 4099, 1, 0), (4, 2500, 7, 5)]


def poisoned_confidence(n: int) -> Confidence:
    return Confidence(poisoned(n, dtype=torch.int64), *(poisoned(n, dtype=torch.float32) for _ in range(3)))


def check(logits: torch.Tensor, rows, splits, seed: int) -> Confidence:
    out = confidence(
        logits, rows, out=poisoned_confidence(len(rows) if rows is not None else logits.shape[0]), splits=splits
    )
    exact = confidence_ref(logits.cpu(), rows.cpu() if rows is not None else None, compute_dtype=torch.float64)
    same = confidence_ref(logits, rows, compute_dtype=torch.float32)
    assert torch.equal(out.token.cpu(), exact.token), f"argmax differs (seed {seed})"
    for field in ("prob", "entropy", "margin"):
        check_rule(
            f"{field} {logits.dtype} {tuple(logits.shape)}",
            getattr(out, field),
            getattr(same, field),
            getattr(exact, field),
            atol=2e-6,
            seed=seed,
        )
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n, vocab, splits, pad", SHAPES)
def test_matches_fp64_reference(n, vocab, splits, pad, dtype, gen, seed):
    logits = randn(gen, n, vocab + pad, dtype=dtype, scale=4.0)[:, :vocab]
    check(logits, None, splits, seed)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_selected_rows_any_order_with_repeats(dtype, gen, seed):
    logits = randn(gen, 9, 700, dtype=dtype, scale=3.0)
    rows = torch.tensor([8, 0, 3, 3, 5], device=DEVICE)
    check(logits, rows, 2, seed)


def test_ties_take_the_first_index_and_have_zero_margin(gen, seed):
    logits = randn(gen, 3, 600, scale=1.0)
    logits[0, [17, 400]] = 20.0  # tie in different chunks
    logits[1, [3, 5]] = 20.0  # tie in the same chunk
    logits[2, :] = 0.5  # all equal: uniform
    out = check(logits, None, 4, seed)
    assert out.token.tolist() == [17, 3, 0]
    assert out.margin[:2].abs().max() < 1e-6
    assert abs(out.entropy[2].item() - torch.log(torch.tensor(600.0)).item()) < 1e-4


def test_suppressed_tokens_at_minus_infinity_contribute_nothing(gen, seed):
    logits = randn(gen, 3, 1200, scale=2.0)
    logits[0, :900] = float("-inf")  # whole leading chunks are -inf
    logits[1, 1:] = float("-inf")  # a single live token: certain
    logits[2, 600:] = float("-inf")
    out = check(logits, None, 4, seed)
    assert out.token[1].item() == 0 and out.prob[1].item() == 1.0
    assert out.entropy[1].item() == 0.0 and out.margin[1].item() == 1.0


def test_bad_inputs_are_clear_errors():
    logits = torch.randn(2, 10, device=DEVICE)
    with pytest.raises(ValueError, match="rows, vocab"):
        confidence(logits[None])
    with pytest.raises(TypeError, match="float16"):
        confidence(logits.to(torch.int32))
    with pytest.raises(ValueError, match="contiguous along the vocabulary"):
        confidence(logits.t())
    with pytest.raises(TypeError, match="rows"):
        confidence(logits, torch.tensor([0.0], device=DEVICE))
    with pytest.raises(ValueError, match="out must be"):
        confidence(logits, out=poisoned_confidence(3))
