"""The engine runs every checkpoint format the loaders accept, and its benchmark prints its table."""

import argparse

from fixtures_checkpoints import write_sdls

from sdls_model import bench
from sdls_model.engine import Engine, InfillJob


def test_engine_from_an_sdls_checkpoint_directory(tmp_path):
    write_sdls(tmp_path / "ckpt")
    engine = Engine.from_dir(tmp_path / "ckpt", max_context=128, max_new_tokens=32)
    info = engine.describe()
    assert info["attention"] == "block_causal" and info["parameters"] > 0
    result = engine.run([InfillJob("def add(a, b):\n    return ", "\n", 8)])[0]
    assert result.stats.forwards >= 1 and engine.cfg.mask_id not in result.tokens


def test_engine_bench_prints_every_configuration(tmp_path, capsys):
    write_sdls(tmp_path / "ckpt")
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--model", str(tmp_path / "ckpt"), "--tasks", "2", "--max-new", "8", "--thresholds", "0.9", "0.5"]
    )
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| decoding")]
    names = [row.split("|")[1].strip() for row in rows]
    assert names == [
        "reference (fixed 1/step, no cache)",
        "fixed 1/step, block cache",
        "threshold 0.9",
        "threshold 0.5",
    ]
    for row in rows:
        assert row.split("|")[2].strip() == "float32"
        tokens_per_forward = float(row.split("|")[3])
        assert 0 < tokens_per_forward <= 8
    # The block cache is exact for this block-causal model: same text as the reference.
    assert rows[1].split("|")[-3].strip() == "100%"


def test_engine_bench_puts_dtypes_side_by_side(tmp_path, capsys):
    write_sdls(tmp_path / "ckpt")
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        [
            "--model",
            str(tmp_path / "ckpt"),
            "--tasks",
            "2",
            "--max-new",
            "8",
            "--thresholds",
            "0.9",
            "--dtypes",
            "float32",
            "bfloat16",
        ]
    )
    assert bench.run(args) == 0
    rows = [
        line.split("|")[1:-1]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| ") and not line.startswith("| decoding")
    ]
    body = [[cell.strip() for cell in row] for row in rows]
    assert [(r[0], r[1]) for r in body] == [
        (name, dtype)
        for name in ("reference (fixed 1/step, no cache)", "fixed 1/step, block cache", "threshold 0.9")
        for dtype in ("float32", "bfloat16")
    ]
    assert body[0][-2:] == ["100%", "100%"]  # the reference against itself
    assert all(float(r[2]) > 0 and r[-1].endswith("%") for r in body)
