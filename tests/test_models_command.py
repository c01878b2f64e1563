"""`sdls models DIR`: what sdls will do with each checkpoint, and why it refuses a broken one."""

from __future__ import annotations

import json
import math

import pytest
import torch
from fixtures_checkpoints import write_dream, write_llada, write_sdls
from fixtures_families import write_family
from safetensors import safe_open

from sdls.cli import main
from sdls_model.engine import Engine

torch.set_num_threads(1)

# (fixture, writer options, family, attention, infill, block size)
CASES = [
    ("stable-diffcoder", {}, "stable-diffcoder", "block_causal", "fim", 4),
    ("sdar", {"block_size": 8}, "sdar", "block_causal", "prefix_only", 8),
    ("fast-dllm-v2", {}, "fast-dllm-v2", "block_causal", "prefix_only", 32),
    ("a2d-qwen3", {}, "a2d-mdlm", "bidirectional", "in_place", 32),
    ("a2d-qwen2", {"sdls_objective": "bd3lm"}, "a2d-bd3lm", "block_causal", "prefix_only", 32),
]


def models(capsys, *args) -> tuple[int, str]:
    code = main(["models", *map(str, args)])
    return code, capsys.readouterr().out


def stored_numel(directory) -> int:
    total = 0
    for path in directory.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())  # noqa: SIM118 (safe_open is not iterable)
    return total


@pytest.mark.parametrize("fixture,options,family,attention,infill,block", CASES, ids=[c[0] for c in CASES])
def test_reports_each_family_and_the_memory_the_engine_really_takes(
    tmp_path, capsys, fixture, options, family, attention, infill, block
):
    write_family(tmp_path / "ck", fixture, **options)
    code, out = models(capsys, tmp_path / "ck", "--json", "--dtype", "float32", "--max-context", 300)
    assert code == 0
    (report,) = json.loads(out)
    assert report["ok"] and report["problems"] == []
    got = {k: report[k] for k in ("family", "attention", "infill", "block_size", "compute_dtype")}
    assert got == dict(family=family, attention=attention, infill=infill, block_size=block, compute_dtype="float32")
    engine = Engine.from_dir(tmp_path / "ck", dtype="float32", max_context=300)
    assert report["parameters"] == engine.cfg.num_parameters() == stored_numel(tmp_path / "ck")
    memory = report["memory"]
    assert memory["kv_cache_bytes"] == engine.cache.nbytes()
    assert memory["weights_bytes"] == engine.weight_bytes()  # packed float16 matrices where the engine packs them
    assert report["weights"] == engine.describe()["weights"]
    assert memory["total_bytes"] == memory["weights_bytes"] + memory["kv_cache_bytes"]
    assert report["tokens"]["mask"]["id"] == engine.cfg.mask_id
    assert report["tokens"]["mask"]["text"] == engine.tokenizer.hf.id_to_token(engine.cfg.mask_id)


def test_text_report_says_family_attention_infill_and_memory(tmp_path, capsys):
    write_family(tmp_path / "sdc", "stable-diffcoder")
    code, out = models(capsys, tmp_path / "sdc", "--dtype", "bfloat16")
    assert code == 0
    for text in [
        f"{tmp_path / 'sdc'}: Stable-DiffCoder (ByteDance Seed) — loads",
        "blocks of 4: blocks counted from position 0 of the sequence",
        "fill-in-the-middle tokens (suffix, then prefix)",
        "'<[fim-prefix]>'",
        "threshold 0.95; row i predicts token i",
        "computes in bfloat16",
        "KV cache",
    ]:
        assert text in out, out


def test_older_formats_are_reported_too(tmp_path, capsys):
    write_sdls(tmp_path / "sdls")
    write_dream(tmp_path / "dream")
    write_llada(tmp_path / "llada")
    code, out = models(capsys, tmp_path / "sdls", tmp_path / "dream", tmp_path / "llada", "--json")
    assert code == 0
    reports = json.loads(out)
    assert [(r["family"], r["logit_shift"], r["infill"]) for r in reports] == [
        ("sdls", False, "fim"),
        ("dream", True, "in_place"),
        ("llada", False, "in_place"),
    ]


def test_a_broken_checkpoint_is_refused_with_the_file_and_tensor(tmp_path, capsys):
    write_family(tmp_path / "ok", "sdar")
    write_family(tmp_path / "broken", "sdar", shards=2)
    index = json.loads((tmp_path / "broken" / "model.safetensors.index.json").read_text())
    shard = tmp_path / "broken" / index["weight_map"]["model.norm.weight"]
    shard.unlink()
    code, out = models(capsys, tmp_path / "ok", tmp_path / "broken")
    assert code == 1
    assert f"{tmp_path / 'ok'}: SDAR (JetLM) — loads" in out
    assert f"{tmp_path / 'broken'}: SDAR (JetLM) — cannot be loaded" in out
    assert f"  - {shard}: shard listed in model.safetensors.index.json is missing" in out
    code, out = models(capsys, tmp_path / "broken", "--json")
    (report,) = json.loads(out)
    assert code == 1 and not report["ok"] and any(str(shard) in p for p in report["problems"])


def test_unreadable_configs_and_missing_directories(tmp_path, capsys):
    write_family(tmp_path / "llama", "stable-diffcoder", revision="older")
    config = json.loads((tmp_path / "llama" / "config.json").read_text())
    config.pop("auto_map")
    (tmp_path / "llama" / "config.json").write_text(json.dumps(config))
    code, out = models(capsys, tmp_path / "llama", tmp_path / "absent")
    assert code == 1
    assert "autoregressive model, not a diffusion one" in out
    assert f"{tmp_path / 'absent'}: checkpoint directory does not exist" in out
