"""Training: one step lowers the loss; the loop schedules, stops on its time budget, saves, resumes."""

import random

import pytest
import torch

from sdls_model.checkpoint import load_checkpoint
from sdls_model.config import ModelConfig
from sdls_model.tokenizer import train_tokenizer
from sdls_model.train.objectives import RowPlan, build_rows, collate, diffusion_loss
from sdls_model.train.trainer import TrainConfig, Trainer, lr_at, stage_at
from sdls_model.transformer import Transformer

TEXTS = [
    f'''def scale_{i}(values, factor={i}):
    """Multiply every value by factor."""
    result = []
    for value in values:
        result.append(value * factor)
    return result


class Box{i}:
    def __init__(self, items):
        self.items = list(items)

    def __len__(self):
        return len(self.items)
'''
    for i in range(30)
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=320)


@pytest.fixture(scope="module")
def cfg(tok):
    return ModelConfig.from_name("test-tiny", vocab_size=tok.vocab_size)


@pytest.mark.parametrize("stage", [1, 2])
def test_one_step_lowers_the_loss_on_a_fixed_batch(cfg, tok, stage):
    torch.set_num_threads(1)  # the machine is shared; a tiny model gains nothing from more
    torch.manual_seed(0)
    model = Transformer(cfg).init_weights(seed=0)
    rng = random.Random(stage)
    batch = collate(cfg, build_rows(cfg, tok, TEXTS, RowPlan("span", 48, 2), 4, rng), stage, rng, tok.vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = diffusion_loss(model, batch)
    before.backward()
    opt.step()
    with torch.no_grad():
        after = diffusion_loss(model, batch)
    assert after < before - 0.05, (float(before), float(after))


def test_schedule_warms_up_decays_and_switches_stage():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1, stage2_fraction=0.2)
    assert lr_at(0.0, 0, cfg) == pytest.approx(1e-4)
    assert lr_at(0.05, 9, cfg) == pytest.approx(1e-3)
    assert lr_at(0.5, 100, cfg) == pytest.approx(0.55e-3)
    assert lr_at(1.0, 1000, cfg) == pytest.approx(1e-4)
    assert [stage_at(p, cfg) for p in (0.0, 0.79, 0.8, 0.99)] == [1, 1, 2, 2]


def small_train_config(**overrides) -> TrainConfig:
    base = dict(
        steps=12,
        batch_size=2,
        lr=3e-3,
        warmup_steps=2,
        context=40,
        span_blocks=2,
        continue_context=24,
        continue_blocks=2,
        eval_every=6,
        eval_batches=1,
        checkpoint_every=6,
        log_every=100,
        threads=1,
    )
    return TrainConfig(**{**base, **overrides})


def test_training_saves_an_engine_checkpoint_and_resumes(cfg, tok, tmp_path):
    logs = []
    first = Trainer(cfg, tok, TEXTS, TEXTS[:3], small_train_config(), tmp_path, device="cpu", log=logs.append)
    summary = first.train()
    assert summary["steps"] == 12
    assert {row[1] for row in first.history["train"]} == {1, 2}  # both stages ran
    assert [row["step"] for row in first.history["val"]][-1] == 12
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000
    loaded_cfg, model, loaded_tok = load_checkpoint(tmp_path / "latest")
    assert loaded_cfg == cfg and loaded_tok.vocab_size == tok.vocab_size
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert (tmp_path / "checkpoints" / "step000006").is_dir()

    second = Trainer(cfg, tok, TEXTS, TEXTS[:3], small_train_config(steps=16), tmp_path, device="cpu", log=logs.append)
    assert second.resume() and second.step == 12
    assert second.train()["steps"] == 16
    assert any("resumed" in line for line in logs)


def test_time_budget_ends_training_cleanly_with_both_stages(cfg, tok, tmp_path):
    trainer = Trainer(
        cfg,
        tok,
        TEXTS,
        TEXTS[:3],
        small_train_config(steps=10**6, time_budget=1.5, eval_every=10**6, checkpoint_every=10**6),
        tmp_path,
        device="cpu",
        log=lambda _: None,
    )
    summary = trainer.train()
    assert 0 < summary["steps"] < 10**6 and summary["wall_seconds"] >= 1.5
    assert {row[1] for row in trainer.history["train"]} == {1, 2}
    assert (tmp_path / "latest" / "config.json").exists()
