"""`sdls bench engine --random/--roofline`: random weights of any named shape build a valid model, and
the roofline table's ratios are computed from the numbers the same run measured (no timing asserts)."""

import argparse
import re

import pytest

from sdls_model import bench, roofline
from sdls_model.checkpoint import scratch_model_dir
from sdls_model.config import PRESETS
from sdls_model.packed_weights import fbgemm_float16_available
from sdls_model.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_file(scratch_model_dir() / "tokenizer.json")


@pytest.mark.parametrize("shape", sorted(PRESETS))
def test_a_random_shape_keeps_its_vocabulary_and_every_special_id_inside_it(shape, tokenizer):
    # `--random qwen2.5-0.5b` used to give the 151,936-row shape the tokenizer's 8,192 rows while
    # keeping its mask id 151666: "mask_id 151666 is outside the vocabulary (size 8192)".
    cfg = bench.random_config(shape, tokenizer)
    assert cfg.vocab_size == max(PRESETS[shape].get("vocab_size", 0), tokenizer.vocab_size)
    assert cfg.mask_id == tokenizer.token_to_id("<|mask|>")
    assert cfg.eos_id == tokenizer.token_to_id("<|endoftext|>")
    for name in ("fim_prefix_id", "fim_suffix_id", "fim_middle_id", "bos_id"):
        if PRESETS[shape].get(name, 0) is None:
            assert getattr(cfg, name) is None, "a shape without the token keeps none"
    assert cfg.attention == PRESETS[shape].get("attention", "block_causal")


def test_bench_engine_runs_a_random_shape_end_to_end(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--random", "test-tiny", "--tasks", "1", "--max-new", "4", "--thresholds", "0.9"])
    assert bench.run(args) == 0
    assert "random test-tiny" in capsys.readouterr().out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_roofline_table_ratios_come_from_the_measured_limits(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--roofline", "test-tiny", "--ctx", "48", "--blocks", "4", "8", "--steps", "3", "--threads", "1"]
    )
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    limits = re.search(r"matmul ([\d.]+) GFLOP/s .*\); memory ([\d.]+) GB/s", out)
    assert limits, out
    peak, bandwidth = float(limits[1]), float(limits[2])
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    head = _cells(lines[0])
    assert head == [
        "block",
        "forward path",  # the engine's (plain, fast, static, graph), not the weights'
        "block steps",
        "ms/forward p50",
        "GFLOP/forward",
        "MB/forward",
        "compute floor ms",
        "memory floor ms",
        "ratio",
        "bound",
        "block start ms p50",
        "ms/token, 1 token/step",
    ]
    rows = [dict(zip(head, _cells(line))) for line in lines[1:]]
    assert [r["block"] for r in rows] == ["4", "8"]
    for r in rows:
        assert int(r["block steps"]) >= 3 and r["forward path"] == "plain"
        ms, gflop, mb = float(r["ms/forward p50"]), float(r["GFLOP/forward"]), float(r["MB/forward"])
        compute, memory = gflop / peak * 1e3, mb / bandwidth
        assert float(r["compute floor ms"]) == pytest.approx(compute, rel=0.02, abs=2e-3)
        assert float(r["memory floor ms"]) == pytest.approx(memory, rel=0.02, abs=2e-3)
        assert float(r["ratio"]) == pytest.approx(ms / max(compute, memory), rel=0.03)
        assert r["bound"] == ("compute" if compute >= memory else "memory")
        block, start = int(r["block"]), float(r["block start ms p50"])
        assert float(r["ms/token, 1 token/step"]) == pytest.approx((start + (block - 1) * ms) / block, rel=0.02)
    # A larger block feeds more tokens through the same weights: more work, the same weight bytes.
    assert float(rows[1]["GFLOP/forward"]) > float(rows[0]["GFLOP/forward"])


def test_step_counts_follow_the_shape():
    cfg = bench.random_config("qwen2.5-0.5b", Tokenizer.from_file(scratch_model_dir() / "tokenizer.json"))
    # 0.5B: ~358M multiplied weights in the layers; a 4-token step with 2 output rows and 1k keys.
    assert roofline.layer_matrix_params(cfg) == 24 * (2 * 896 * 896 + 2 * 896 * 128 + 3 * 896 * 4864)
    flops = roofline.step_flops(cfg, 4, 2, 1024)
    assert flops == pytest.approx(
        2 * 4 * roofline.layer_matrix_params(cfg) + 2 * 2 * 896 * cfg.vocab_size + 24 * 4 * 4 * 1028 * 14 * 64
    )
    # Tied: the output projection reads the whole table; bf16 weights plus a 1k-token bf16 K/V.
    assert roofline.step_bytes(cfg, 1024, 2) == (cfg.num_parameters() + 2 * 24 * 2 * 64 * 1024) * 2


@pytest.mark.skipif(not fbgemm_float16_available(), reason="this torch build has no FBGEMM float16")
def test_roofline_puts_the_ways_of_storing_weights_side_by_side(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--roofline", "test-tiny", "--ctx", "48", "--blocks", "4", "--steps", "2", "--threads", "1"]
        + ["--device", "cpu", "--dtypes", "float32", "--weights", "plain", "float16"]
    )
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert out.count("limits measured") == 1  # one set of limits for both tables
    heads = [line for line in out.splitlines() if line.startswith("roofline:")]
    assert ["weights plain" in heads[0], "weights float16 packed" in heads[1]] == [True, True]
    rows = [dict(zip(_cells(t[0]), _cells(t[2]))) for t in _tables(out)]
    plain, packed = (float(r["MB/forward"]) for r in rows)
    assert packed < plain * 0.6  # the matrices read at 2 bytes, not 4


@pytest.mark.parametrize("mode", [["--roofline", "test-tiny", "--device", "cpu"], ["--random", "test-tiny"]])
def test_weights_that_cannot_run_in_the_dtype_are_refused_before_anything_is_timed(mode, capsys, monkeypatch):
    # `--dtypes bfloat16 --weights plain float16` used to time the plain table for minutes, then die
    # with a traceback building the packed engine, throwing the plain table away.
    def timed(*_args, **_kwargs):
        raise AssertionError("nothing may be built or timed before the choices are checked")

    monkeypatch.setattr(roofline, "measure_limits", timed)
    monkeypatch.setattr(roofline, "build", timed)
    monkeypatch.setattr(bench, "build_engine", timed)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(mode + ["--threads", "1", "--dtypes", "bfloat16", "--weights", "plain", "float16"])
    assert bench.run(args) == 2
    captured = capsys.readouterr()
    assert "float16 packed weights need a CPU computing in float32" in captured.err
    assert "--dtypes float32" in captured.err
    assert "|" not in captured.out


def _tables(out: str) -> list[list[str]]:
    tables, current = [], []
    for line in out.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables
