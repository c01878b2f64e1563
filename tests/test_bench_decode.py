"""`sdls bench kernels`: the smoke run goes end to end on the CPU, and the floor arithmetic is right."""

import os
import re
import subprocess
import sys

import pytest
import torch

from sdls_model.bench_decode import kv_bytes, weight_bytes
from sdls_model.config import ModelConfig
from sdls_model.transformer import Transformer


def test_smoke_run_prints_the_table_with_owed_gpu_figures():
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"  # the kernel path runs in Triton's interpreter
    proc = subprocess.run(
        [sys.executable, "-m", "sdls.cli", "bench", "kernels", "--smoke"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    row = next(line for line in out.splitlines() if line.startswith("| test-tiny | 64 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) > 0  # eager ms was measured
    diff, scale = map(float, re.match(r"([\d.e+-]+) \(([\d.e+-]+)\)", cells[8]).groups())
    assert diff < 1e-4 * max(scale, 1.0) and cells[9] == "100%"  # kernel path == model forward
    # The product path: the Engine's block steps, as block-causal and as bidirectional, with their path.
    for cell in cells[10:12]:
        ms, path = re.fullmatch(r"([\d.]+) \((\w+)\)", cell).groups()
        assert float(ms) > 0 and path == ("graph" if torch.cuda.is_available() and cell is cells[10] else "plain")
    for kernel in ("confidence", "add_rmsnorm", "swiglu", "rope", "block_attention"):
        line = next(line for line in out.splitlines() if line.startswith(f"| {kernel} |"))
        assert float(line.strip("|").split("|")[-1]) < 1e-4
    if not torch.cuda.is_available():
        assert "GPU run owed" in row


def test_without_gpu_the_full_run_refuses_clearly(capsys):
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    from sdls.cli import main

    assert main(["bench", "kernels"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out


@pytest.mark.parametrize("name, expected_params", [("qwen2.5-0.5b", 494_032_768), ("qwen2.5-7b", 7_615_616_512)])
def test_floor_bytes_count_each_weight_once(name, expected_params):
    cfg = ModelConfig.from_name(name)
    with torch.device("meta"):
        model = Transformer(cfg).to(torch.bfloat16)
    if cfg.tie_embeddings:  # a tied table is read whole by the lm_head, once
        assert weight_bytes(model) == 2 * expected_params
    else:  # an untied table is only gathered: not counted
        assert weight_bytes(model) == 2 * (expected_params - cfg.vocab_size * cfg.d_model)
    assert kv_bytes(cfg, 1024, torch.bfloat16) == 2 * cfg.n_layers * cfg.n_kv_heads * 1024 * cfg.head_dim * 2
