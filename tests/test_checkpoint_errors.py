"""Broken checkpoints fail with a CheckpointError naming the file and tensor, before any weight is read."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fixtures_checkpoints import sdls_tokenizer, tiny_cfg, write_dream, write_llada, write_sdls
from safetensors.torch import load_file, save_file

import sdls_model.checkpoint as checkpoint
from sdls_model.checkpoint import CheckpointError, load_checkpoint, validate_checkpoint

torch.set_num_threads(1)
SHARD_LIMIT = 40_000  # bytes: the tiny model splits into several shards


def header(path: Path) -> dict:
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def last_tensor(path: Path) -> str:
    """The tensor whose data ends the file (the one a truncation cuts)."""
    entries = {k: v for k, v in header(path).items() if k != "__metadata__"}
    return max(entries, key=lambda k: entries[k]["data_offsets"][1])


def edit_tensors(path: Path, edit: Callable[[dict], None]) -> None:
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def truncate(path: Path, nbytes: int = 10) -> None:
    path.write_bytes(path.read_bytes()[:-nbytes])


def shard_holding(ck: Path, name: str) -> Path:
    index = json.loads((ck / "model.safetensors.index.json").read_text())
    return ck / index["weight_map"][name]


def _config_missing(ck: Path) -> list[str]:
    (ck / "config.json").unlink()
    return [f"{ck / 'config.json'}: missing"]


def _config_not_json(ck: Path) -> list[str]:
    (ck / "config.json").write_text("{oops")
    return [f"{ck / 'config.json'}: not valid JSON"]


def _config_unknown_model_type(ck: Path) -> list[str]:
    edit_json(ck / "config.json", lambda c: c.update(model_type="gpt9"))
    return [f"{ck / 'config.json'}: unknown model_type 'gpt9'"]


def _config_inconsistent(ck: Path) -> list[str]:
    edit_json(ck / "config.json", lambda c: c.update(n_heads=5))
    return [f"{ck / 'config.json'}: invalid ModelConfig", "not divisible by n_heads 5"]


def _config_unknown_field(ck: Path) -> list[str]:
    edit_json(ck / "config.json", lambda c: c.update(n_expertz=8))
    return [f"{ck / 'config.json'}: unknown ModelConfig fields: n_expertz"]


def _tokenizer_missing(ck: Path) -> list[str]:
    (ck / "tokenizer.json").unlink()
    return [f"{ck / 'tokenizer.json'}: missing"]


def _tokenizer_corrupt(ck: Path) -> list[str]:
    (ck / "tokenizer.json").write_text('{"model": 3}')
    return [f"{ck / 'tokenizer.json'}: cannot load tokenizer"]


def _mask_not_a_token(ck: Path) -> list[str]:
    edit_json(ck / "config.json", lambda c: c.update(mask_id=310))
    return [f"{ck / 'tokenizer.json'}: has no token with id 310 (mask_id in config.json)"]


def _weights_missing(ck: Path) -> list[str]:
    (ck / "model.safetensors").unlink()
    return [f"{ck}: no weights: neither model.safetensors nor model.safetensors.index.json exists"]


def _truncated_single(ck: Path) -> list[str]:
    victim = last_tensor(ck / "model.safetensors")
    truncate(ck / "model.safetensors")
    return [f"{ck / 'model.safetensors'}: tensor {victim!r} is cut short"]


def _truncated_shard(ck: Path) -> list[str]:
    shard = shard_holding(ck, "layers.1.mlp.up_proj.weight")
    victim = last_tensor(shard)
    truncate(shard, 1)
    return [f"{shard}: tensor {victim!r} is cut short"]


def _truncated_header(ck: Path) -> list[str]:
    (ck / "model.safetensors").write_bytes((ck / "model.safetensors").read_bytes()[:20])
    return [f"{ck / 'model.safetensors'}: header claims"]


def _garbage_file(ck: Path) -> list[str]:
    (ck / "model.safetensors").write_bytes(struct.pack("<Q", 12) + b"not json!!!!" + b"\0" * 64)
    return [f"{ck / 'model.safetensors'}: safetensors header is not valid JSON"]


def _shard_missing(ck: Path) -> list[str]:
    shard = shard_holding(ck, "norm.weight")
    shard.unlink()
    return [f"{shard}: shard listed in model.safetensors.index.json is missing"]


def _wrong_shape(ck: Path) -> list[str]:
    edit_tensors(
        ck / "model.safetensors", lambda t: t.update({"layers.0.self_attn.k_proj.weight": torch.zeros(48, 64)})
    )
    return [f"{ck / 'model.safetensors'}: tensor 'layers.0.self_attn.k_proj.weight' has shape [48, 64]", "[32, 64]"]


def _missing_tensor(ck: Path) -> list[str]:
    edit_tensors(ck / "model.safetensors", lambda t: t.pop("layers.1.mlp.up_proj.weight"))
    return [f"{ck / 'model.safetensors'}: tensor 'layers.1.mlp.up_proj.weight' is missing"]


def _unexpected_tensor(ck: Path) -> list[str]:
    edit_tensors(ck / "model.safetensors", lambda t: t.update({"layers.0.mlp.extra_proj.weight": torch.zeros(2)}))
    return [f"{ck / 'model.safetensors'}: unexpected tensor 'layers.0.mlp.extra_proj.weight'"]


def _tied_head_stored(ck: Path) -> list[str]:
    # sdls stores a tied head once; a second copy means the config and the weights disagree.
    edit_tensors(ck / "model.safetensors", lambda t: t.update({"lm_head.weight": t["embed_tokens.weight"].clone()}))
    return ["unexpected tensor 'lm_head.weight'"]


def _integer_weights(ck: Path) -> list[str]:
    edit_tensors(ck / "model.safetensors", lambda t: t.update({"norm.weight": torch.ones(64, dtype=torch.int32)}))
    return [f"{ck / 'model.safetensors'}: tensor 'norm.weight' has dtype I32"]


def _index_lists_absent_tensor(ck: Path) -> list[str]:
    shard = shard_holding(ck, "norm.weight")
    edit_tensors(shard, lambda t: t.pop("norm.weight"))
    return [
        f"{shard}: tensor 'norm.weight' is listed for this shard in model.safetensors.index.json but the shard lacks it"
    ]


def _shard_has_unlisted(ck: Path) -> list[str]:
    shard = shard_holding(ck, "norm.weight")
    edit_tensors(shard, lambda t: t.update({"stray.weight": torch.zeros(3)}))
    return [f"{shard}: tensor 'stray.weight' is not listed for this shard"]


def _bad_index(ck: Path) -> list[str]:
    (ck / "model.safetensors.index.json").write_text('{"weights": {}}')
    return [f"{ck / 'model.safetensors.index.json'}: not a valid safetensors index"]


# (id, written sharded?, break the checkpoint -> the texts its error must contain)
CASES: list[tuple[str, bool, Callable[[Path], list[str]]]] = [
    ("config missing", False, _config_missing),
    ("config not json", False, _config_not_json),
    ("config unknown model_type", False, _config_unknown_model_type),
    ("config inconsistent", False, _config_inconsistent),
    ("config unknown field", False, _config_unknown_field),
    ("tokenizer missing", False, _tokenizer_missing),
    ("tokenizer corrupt", False, _tokenizer_corrupt),
    ("mask id not a token", False, _mask_not_a_token),
    ("weights missing", False, _weights_missing),
    ("truncated single file", False, _truncated_single),
    ("truncated shard", True, _truncated_shard),
    ("truncated header", False, _truncated_header),
    ("garbage header", False, _garbage_file),
    ("shard missing", True, _shard_missing),
    ("wrong shape", False, _wrong_shape),
    ("missing tensor", False, _missing_tensor),
    ("unexpected tensor", False, _unexpected_tensor),
    ("tied head stored twice", False, _tied_head_stored),
    ("integer weights", False, _integer_weights),
    ("index lists absent tensor", True, _index_lists_absent_tensor),
    ("shard has unlisted tensor", True, _shard_has_unlisted),
    ("index not valid", True, _bad_index),
]


@pytest.fixture
def no_weight_reads(monkeypatch):
    """Fail the test if any weight data is read: errors must come before serving anything."""

    def forbidden(stored):
        raise AssertionError("weights were read from a checkpoint that should have been rejected")

    monkeypatch.setattr(checkpoint, "load_tensors", forbidden)


def check(directory: Path, expected: list[str]) -> None:
    problems = validate_checkpoint(directory)
    for text in expected:
        assert any(text in p for p in problems), f"{text!r} not in problems:\n" + "\n".join(problems)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(directory)
    for text in expected:
        assert text in str(raised.value)
    assert raised.value.problems == problems


@pytest.mark.parametrize("name,sharded,breaker", CASES, ids=[c[0] for c in CASES])
def test_broken_checkpoint_is_rejected(tmp_path, no_weight_reads, name, sharded, breaker):
    ck = tmp_path / "ck"
    write_sdls(ck, max_shard_bytes=SHARD_LIMIT if sharded else 2**30)
    assert validate_checkpoint(ck) == []
    check(ck, breaker(ck))


def test_missing_directory(tmp_path, no_weight_reads):
    check(tmp_path / "absent", [f"{tmp_path / 'absent'}: checkpoint directory does not exist"])
    (tmp_path / "file").write_text("x")
    check(tmp_path / "file", [f"{tmp_path / 'file'}: not a directory"])


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    ck = tmp_path / "ck"
    write_sdls(ck)
    _missing_tensor(ck)
    _unexpected_tensor(ck)
    (ck / "tokenizer.json").unlink()
    problems = validate_checkpoint(ck)
    assert len(problems) == 3, problems


def test_external_formats_name_their_own_tensors(tmp_path, no_weight_reads):
    """Errors speak the checkpoint's own names (what the user can find in the file)."""
    write_dream(tmp_path / "dream")
    edit_tensors(tmp_path / "dream" / "model.safetensors", lambda t: t.pop("model.layers.1.self_attn.q_proj.bias"))
    check(
        tmp_path / "dream",
        [f"{tmp_path / 'dream' / 'model.safetensors'}: tensor 'model.layers.1.self_attn.q_proj.bias' is missing"],
    )
    write_llada(tmp_path / "llada")
    edit_tensors(
        tmp_path / "llada" / "model.safetensors",
        lambda t: t.update({"model.transformer.blocks.0.ff_proj.weight": torch.zeros(64, 64)}),
    )
    check(tmp_path / "llada", ["tensor 'model.transformer.blocks.0.ff_proj.weight' has shape [64, 64]", "[96, 64]"])
    edit_json(tmp_path / "llada" / "config.json", lambda c: c.update(alibi=True))
    check(tmp_path / "llada", ["config.json", "alibi=True is not supported"])


def test_save_refuses_a_model_that_does_not_match_its_config(tmp_path):
    from fixtures_checkpoints import random_model

    model = random_model(tiny_cfg())
    model.extra = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="unexpected"):
        checkpoint.save_checkpoint(tmp_path / "ck", model, sdls_tokenizer())
    assert list(tmp_path.iterdir()) == []


def test_non_finite_weights_are_rejected_on_load(tmp_path):
    ck = tmp_path / "ck"
    write_sdls(ck)
    edit_tensors(
        ck / "model.safetensors", lambda t: t["layers.1.mlp.down_proj.weight"].__setitem__((3, 4), float("nan"))
    )
    assert validate_checkpoint(ck) == []  # headers are fine; only reading the data shows it
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors: tensor 'layers\.1\.mlp\.down_proj\.weight' contains NaN"
    ):
        load_checkpoint(ck)


JUNK = [None, "x", -1, [1], True]


@pytest.mark.parametrize("writer", [write_sdls, write_dream, write_llada], ids=["sdls", "dream", "llada"])
def test_junk_config_values_never_crash(tmp_path, writer):
    """Every config.json field set to junk: either a clean load or a CheckpointError, nothing else."""
    ck = tmp_path / "ck"
    writer(ck)
    original = (ck / "config.json").read_text()
    rejected = 0
    for key in json.loads(original):
        for value in JUNK:
            edit_json(ck / "config.json", lambda c: c.update({key: value}))
            try:
                load_checkpoint(ck)
            except CheckpointError:
                rejected += 1  # (junk that still describes a model may fail on the tensors instead)
            (ck / "config.json").write_text(original)
    assert rejected > 20


# -- the same refusals for the Hugging Face style families (their own tensor names) ---------------------
def _family_shard_missing(ck: Path) -> list[str]:
    return _shard_missing_holding(ck, "model.norm.weight")


def _shard_missing_holding(ck: Path, name: str) -> list[str]:
    shard = shard_holding(ck, name)
    shard.unlink()
    return [f"{shard}: shard listed in model.safetensors.index.json is missing"]


def _family_wrong_shape(ck: Path) -> list[str]:
    name = "model.layers.1.self_attn.k_proj.weight"
    shard = shard_holding(ck, name)
    right = header(shard)[name]["shape"]
    edit_tensors(shard, lambda t: t.update({name: torch.zeros(right[0] + 8, right[1])}))
    return [f"{shard}: tensor {name!r} has shape [{right[0] + 8}, {right[1]}], config.json implies {right}"]


def _family_head_dim_changed(ck: Path) -> list[str]:
    # head_dim decides q/k/v/o (and Qwen3's q/k norms): a config.json that disagrees names each tensor.
    config = json.loads((ck / "config.json").read_text())
    wrong = (config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]) * 2
    edit_json(ck / "config.json", lambda c: c.update(head_dim=wrong))
    if config["model_type"] in ("Fast_dLLM_Qwen", "a2d-qwen2"):  # Qwen2 fixes head_dim = hidden / heads
        return [f"{ck / 'config.json'}: head_dim {wrong} != hidden_size / num_attention_heads"]
    return [
        "tensor 'model.layers.0.self_attn.q_proj.weight' has shape",
        "tensor 'model.layers.1.self_attn.o_proj.weight'",
    ]


def _family_missing_tensor(ck: Path) -> list[str]:
    name = "model.layers.1.mlp.up_proj.weight"
    edit_tensors(shard_holding(ck, name), lambda t: t.pop(name))
    return [f"{shard_holding(ck, name)}: tensor {name!r} is listed for this shard"]


def _family_unexpected_tensor(ck: Path) -> list[str]:
    shard = shard_holding(ck, "model.norm.weight")
    edit_tensors(shard, lambda t: t.update({"model.layers.0.self_attn.sinks": torch.zeros(4)}))
    return [f"{shard}: tensor 'model.layers.0.self_attn.sinks' is not listed for this shard"]


def _family_integer_weights(ck: Path) -> list[str]:
    name = "model.layers.0.input_layernorm.weight"
    shard = shard_holding(ck, name)
    size = header(shard)[name]["shape"][0]
    edit_tensors(shard, lambda t: t.update({name: torch.ones(size, dtype=torch.int8)}))
    return [f"{shard}: tensor {name!r} has dtype I8"]


def _family_truncated(ck: Path) -> list[str]:
    shard = shard_holding(ck, "model.embed_tokens.weight")
    victim = last_tensor(shard)
    truncate(shard, 3)
    return [f"{shard}: tensor {victim!r} is cut short"]


FAMILY_CASES: list[tuple[str, Callable[[Path], list[str]]]] = [
    ("shard missing", _family_shard_missing),
    ("wrong shape", _family_wrong_shape),
    ("head_dim disagrees", _family_head_dim_changed),
    ("missing tensor", _family_missing_tensor),
    ("unexpected tensor", _family_unexpected_tensor),
    ("integer weights", _family_integer_weights),
    ("truncated shard", _family_truncated),
]
FAMILY_NAMES = ["stable-diffcoder", "sdar", "fast-dllm-v2", "a2d-qwen3", "a2d-qwen2"]


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("name,breaker", FAMILY_CASES, ids=[c[0] for c in FAMILY_CASES])
def test_broken_family_checkpoint_is_rejected(tmp_path, no_weight_reads, family, name, breaker):
    from fixtures_families import write_family

    ck = tmp_path / "ck"
    write_family(ck, family, shards=3)
    assert validate_checkpoint(ck) == []
    check(ck, breaker(ck))


def test_family_q_norm_of_the_wrong_size_is_named(tmp_path, no_weight_reads):
    from fixtures_families import write_family

    ck = tmp_path / "ck"
    write_family(ck, "sdar")
    name = "model.layers.0.self_attn.q_norm.weight"
    edit_tensors(ck / "model.safetensors", lambda t: t.update({name: torch.ones(16)}))
    check(ck, [f"{ck / 'model.safetensors'}: tensor {name!r} has shape [16], config.json implies [32]"])


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_junk_family_config_values_never_crash(tmp_path, family):
    """Every config.json field of each family set to junk: a clean load or a CheckpointError, nothing else."""
    from fixtures_families import write_family

    ck = tmp_path / "ck"
    write_family(ck, family)
    original = (ck / "config.json").read_text()
    rejected = 0
    for key in json.loads(original):
        for value in JUNK:
            edit_json(ck / "config.json", lambda c: c.update({key: value}))
            try:
                load_checkpoint(ck)
            except CheckpointError:
                rejected += 1
            (ck / "config.json").write_text(original)
    assert rejected > 20
