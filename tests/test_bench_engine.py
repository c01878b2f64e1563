"""`sdls bench engine` runs end to end on a tiny checkpoint and prints one row per rule and dtype."""
from __future__ import annotations

import argparse

from fixtures_checkpoints import write_sdls

from sdls_model.bench import add_arguments, run


def test_dtypes_side_by_side(tmp_path, capsys):
    write_sdls(tmp_path / "tiny")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", str(tmp_path / "tiny"), "--tasks", "2", "--max-new", "8",
                              "--thresholds", "0.9", "--dtypes", "float32", "bfloat16"])
    assert run(args) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    body = [[cell.strip() for cell in row] for row in rows[1:]]
    assert [(r[0], r[1]) for r in body] == [(name, dtype) for name in (
        "reference (fixed 1/step, no cache)", "fixed 1/step, block cache", "threshold 0.9")
        for dtype in ("float32", "bfloat16")]
    assert body[0][-2:] == ["100%", "100%"]                      # the reference against itself
    assert all(float(r[2]) > 0 and r[-1].endswith("%") for r in body)
