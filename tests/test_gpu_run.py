"""tools/gpu_run.sh --dry: every stage of the prepared GPU run runs on this machine on tiny shapes,
writes its results before the next starts, and the pack for the device's return limits holds them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["setup", "tests", "roofline", "train", "adapt", "seed"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("gpu_run")
    env = {**os.environ, "PY": sys.executable, "GPU_RUN_RETURN": str(base / "return")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "model"), str(ROOT / "kernels")])
    proc = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu_run.sh"), str(base / "out"), "--dry"],
        env=env,
        capture_output=True,
        text=True,
        timeout=660,  # ~1.5 min alone on 2 cores; the script stops itself by 570 s (GPU_RUN_TOTAL)
    )
    return proc, base / "out", base / "return"


@pytest.mark.slow
def test_dry_run_runs_every_stage_and_reports_each(dry_run):
    proc, out, _ = dry_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in (out / "summary.md").read_text().splitlines() if line.startswith("| ")]
    status = {r[0].strip(): r[1].strip() for r in rows[1:]}
    assert list(status) == STAGES
    for name in ("tests", "roofline", "train", "adapt", "seed"):
        assert status[name] == "ok (GPU checks skipped: no CUDA)"
    assert status["setup"] == "ok"
    for n, name in enumerate(STAGES, 1):
        assert (out / f"{n:02d}-{name}" / "log.txt").is_file()


@pytest.mark.slow
def test_dry_run_stages_write_their_results(dry_run):
    _, out, _ = dry_run
    tests = (out / "02-tests" / "log.txt").read_text()
    assert "skipped: no CUDA" in tests and "test_engine_cuda.py" in tests  # collected, skipped with a reason
    assert '"forwards"' in (out / "02-tests" / "bench_lsp.json").read_text()  # the server + worker replay ran
    roofline = (out / "03-roofline" / "roofline.md").read_text()
    assert roofline.count("| block | forward path |") == 2  # one table per context
    assert "eager ms" in (out / "03-roofline" / "kernels.md").read_text()
    model = out / "04-train" / "run" / "model"
    shards = list(model.glob("*.safetensors"))
    assert (model / "config.json").is_file() and (model / "MODEL_CARD.md").is_file() and shards
    assert all(s.stat().st_size < 15 * 2**20 for s in shards)
    assert '"humaneval_single_line_pass@1"' in (out / "04-train" / "run" / "summary.json").read_text()
    adapted = out / "05-adapt" / "run" / "model"  # the shipping form: adapter.json and small shards
    assert (adapted / "adapter.json").is_file() and (adapted / "MODEL_CARD.md").is_file()
    assert all(s.stat().st_size < 15 * 2**20 for s in adapted.glob("*.safetensors"))
    seed = out / "06-seed"
    assert "continuing from " + str(model) in (seed / "log.txt").read_text()  # the model stage train made
    assert (seed / "order" / "trajectories.jsonl").is_file() and (seed / "order" / "model" / "config.json").is_file()
    bench = json.loads((seed / "stages.json").read_text())
    assert {"base", "order"} <= set(bench["models"]) and (seed / "stages.png").is_file()


@pytest.mark.slow
def test_dry_run_packs_what_the_device_can_return(dry_run):
    _, _, back = dry_run
    files = sorted(p.name for p in back.iterdir())
    assert "summary.md" in files and "gpu_run.tgz" in files and "04-train--model.safetensors" in files
    assert len(files) <= 8 and sum(p.stat().st_size for p in back.iterdir()) <= 64 << 20
    with tarfile.open(back / "gpu_run.tgz") as tar:
        names = tar.getnames()
    assert "04-train/run/model/config.json" in names and "03-roofline/roofline.md" in names
    assert not [n for n in names if n.endswith((".pt", ".safetensors"))]


def test_usage_and_no_cuda_without_dry_are_clear_errors(tmp_path):
    env = {**os.environ, "PY": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    script = str(ROOT / "tools" / "gpu_run.sh")
    bad = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr
    real = subprocess.run(["bash", script, str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert real.returncode == 2 and "no CUDA" in real.stderr
