"""`sdls complete` and `sdls fix`: one-shot runs on a tiny random checkpoint, and their error cases."""

from __future__ import annotations

import json

import pytest

from sdls.cli import main


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("def add(a, b):\n    return \n\nprint(add(1, 2)\n")
    return str(path)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_complete_json_reports_the_model_work(capsys, tiny_model_dir, source):
    code, out, err = run_cli(
        capsys, "complete", source, "--line", "1", "--col", "11", "--model", str(tiny_model_dir), "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert {"text", "forwards", "tokens", "ms"} <= set(result)
    assert result["forwards"] > 0 and result["tokens"] > 0 and result["ms"] > 0
    assert result["scope"] == "line"
    assert result["text"] or result["reason"]  # either a completion or why there is none


def test_complete_is_deterministic(capsys, tiny_model_dir, source):
    argv = ("complete", source, "--line", "1", "--col", "11", "--model", str(tiny_model_dir), "--json")
    first, second = (json.loads(run_cli(capsys, *argv)[1]) for _ in range(2))
    assert (first["text"], first["forwards"], first["reason"]) == (second["text"], second["forwards"], second["reason"])


def test_fix_reports_the_problem_on_the_line(capsys, tiny_model_dir, source):
    code, out, _ = run_cli(capsys, "fix", source, "--line", "3", "--model", str(tiny_model_dir), "--json")
    result = json.loads(out)
    assert result["problem"] == "syntax error: `(` is never closed"
    assert code == (0 if result["edits"] else 1)
    assert bool(result["diff"]) == bool(result["edits"]) and (result["edits"] or result["reason"])


@pytest.mark.parametrize(
    "content, argv, message",
    [
        (b"\xff\xfeabc", ("--line", "0", "--col", "0"), "is not UTF-8 text"),
        (b"x = 1\x00\x00\n", ("--line", "0", "--col", "0"), "binary"),
        (b"x = 1\n", ("--line", "7", "--col", "0"), "past the end"),
        ("s = '\U0001f600'\n".encode(), ("--line", "0", "--col", "6"), "surrogate pair"),
    ],
)
def test_bad_files_and_positions_exit_2_with_a_message(capsys, tmp_path, tiny_model_dir, content, argv, message):
    path = tmp_path / "bad.py"
    path.write_bytes(content)
    code, _, err = run_cli(capsys, "complete", str(path), *argv, "--model", str(tiny_model_dir))
    assert code == 2 and message in err


def test_missing_model_exits_2_naming_it(capsys, tmp_path, source):
    code, _, err = run_cli(capsys, "complete", source, "--line", "1", "--col", "11", "--model", str(tmp_path / "nope"))
    assert code == 2 and "nope" in err and "does not exist" in err
