"""sdls's own checkpoint format: save/load round trips, sharding, atomic publishing, dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures_checkpoints import random_model, sdls_tokenizer, tiny_cfg, write_sdls
from safetensors.torch import load_file

import sdls_model.checkpoint as checkpoint
from sdls_model.checkpoint import (
    CheckpointError,
    default_model_dir,
    load_checkpoint,
    save_checkpoint,
    validate_checkpoint,
)

torch.set_num_threads(1)


def logits(model, tokens: list[int]) -> torch.Tensor:
    x = torch.tensor([tokens])
    with torch.no_grad():
        return model.logits(model(x, torch.arange(len(tokens))[None]))


SAMPLE = [7, 3, 250, 11, 0, 42, 99, 5, 1, 17]


def test_round_trip_single_file(tmp_path):
    model = write_sdls(tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    cfg, loaded, tok = load_checkpoint(tmp_path / "ck")
    assert cfg == model.cfg
    assert json.loads((tmp_path / "ck" / "config.json").read_text()) == {**model.cfg.to_dict(), "model_type": "sdls"}
    assert torch.equal(logits(loaded, SAMPLE), logits(model, SAMPLE))
    assert loaded.lm_head.weight is loaded.embed_tokens.weight  # still tied after loading
    assert not loaded.training
    assert tok.encode("def add(a, b):") == sdls_tokenizer().encode("def add(a, b):")
    # Tied embeddings are stored once.
    assert "lm_head.weight" not in load_file(str(tmp_path / "ck" / "model.safetensors"))


def test_sharded_round_trip_with_hf_index(tmp_path):
    cfg = tiny_cfg(tie_embeddings=False)
    limit = 40_000
    model = write_sdls(tmp_path / "ck", cfg, max_shard_bytes=limit)
    index = json.loads((tmp_path / "ck" / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert set(index["weight_map"]) == set(model.state_dict())  # untied: lm_head stored too
    tensor_bytes = 0
    for shard in shards:
        tensors = load_file(str(tmp_path / "ck" / shard))
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        assert size <= limit or len(tensors) == 1, f"{shard} holds {size} bytes"
        assert all(index["weight_map"][n] == shard for n in tensors)
        tensor_bytes += size
    assert index["metadata"]["total_size"] == tensor_bytes
    assert not (tmp_path / "ck" / "model.safetensors").exists()
    _, loaded, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(logits(loaded, SAMPLE), logits(model, SAMPLE))


def test_dtype_stored_and_requested(tmp_path):
    model = random_model(tiny_cfg()).to(torch.bfloat16)
    save_checkpoint(tmp_path / "ck", model, sdls_tokenizer())
    _, kept, _ = load_checkpoint(tmp_path / "ck")
    assert {p.dtype for p in kept.parameters()} == {torch.bfloat16}
    _, wide, _ = load_checkpoint(tmp_path / "ck", dtype=torch.float32)
    assert {p.dtype for p in wide.parameters()} == {torch.float32}
    assert torch.equal(wide.embed_tokens.weight, model.embed_tokens.weight.float())


def test_overwrite_replaces_atomically_and_leaves_no_temp_dirs(tmp_path):
    write_sdls(tmp_path / "ck", seed=1, extra_files={"train_log.txt": "step 1\n"})
    newer = write_sdls(tmp_path / "ck", seed=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert not (tmp_path / "ck" / "train_log.txt").exists()  # the old directory is gone, not merged
    _, loaded, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(logits(loaded, SAMPLE), logits(newer, SAMPLE))


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    old = write_sdls(tmp_path / "ck", seed=1)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "write_weights", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ck", random_model(tiny_cfg(), seed=2), sdls_tokenizer())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    _, loaded, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(logits(loaded, SAMPLE), logits(old, SAMPLE))


def test_extra_files_written_and_names_checked(tmp_path):
    write_sdls(tmp_path / "ck", extra_files={"README.md": "# tiny\n", "train_log.json": "{}"})
    assert (tmp_path / "ck" / "README.md").read_text() == "# tiny\n"
    assert validate_checkpoint(tmp_path / "ck") == []
    for bad in ["config.json", "../escape.txt", "sub/file.txt", "model-1.safetensors"]:
        with pytest.raises(ValueError, match="extra file name"):
            write_sdls(tmp_path / "bad", extra_files={bad: "x"})
    assert not (tmp_path / "bad").exists()


def test_compiled_wrapper_is_unwrapped(tmp_path):
    class Wrapper(torch.nn.Module):  # what torch.compile returns exposes the model as _orig_mod
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    model = random_model(tiny_cfg())
    save_checkpoint(tmp_path / "ck", Wrapper(model), sdls_tokenizer())
    _, loaded, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(logits(loaded, SAMPLE), logits(model, SAMPLE))


def test_default_model_dir_is_inside_the_package():
    import sdls_model

    package = Path(sdls_model.__file__).resolve().parent
    assert default_model_dir() in (package / "adapted", package / "default")


def test_load_missing_default_dir_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    assert issubclass(CheckpointError, ValueError)
