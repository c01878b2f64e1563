"""`sdls train` under torchrun: two CPU processes (gloo) train one model and rank 0 writes it."""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sdls_model.checkpoint import load_checkpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_run_writes_one_loadable_model(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    data = tmp_path / "data"
    data.mkdir()
    source = Path(json.__file__).parent  # the json package: a handful of real files
    for path in source.glob("*.py"):
        shutil.copy(path, data / path.name)
    out = tmp_path / "run"
    result = subprocess.run(
        [
            str(torchrun),
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),  # the default 29500 collides with any other torchrun on the machine
            "-m",
            "sdls_model.train.cli",
            "--preset",
            "tiny",
            "--steps",
            "6",
            "--out",
            str(out),
            "--data",
            str(data),
            "--threads",
            "1",
            "--eval-tasks",
            "0",
            "--val-permille",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    log = (out / "train.log").read_text()
    assert "torchrun --nproc-per-node 2" in log and 'trained: {"steps": 6,' in log
    cfg, _model, tok = load_checkpoint(out / "model")
    assert cfg.attention == "block_causal" and tok.vocab_size == cfg.vocab_size
    assert "cpu x 2" in (out / "model" / "MODEL_CARD.md").read_text()
