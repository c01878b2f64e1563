"""The side-by-side runner: figures, verdicts and outputs, end to end on a tiny random-weight model."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace

import pytest
import torch

from sdls.evaluation.metrics import Record, Summary, goal_verdict, percentile, summarise
from sdls.evaluation.report import markdown, write_outputs
from sdls.evaluation.runner import evaluate, standard_configs
from sdls.evaluation.sandbox import STATUSES, Limits
from sdls.evaluation.suites import build_suite
from sdls_model.engine import EditJob, Engine, JobResult, JobStats

LIMITS = Limits(seconds=10)


@pytest.fixture(scope="module")
def eval_model_dir(tmp_path_factory):
    """A tiny random model whose tokenizer was trained on the HumanEval problems it is evaluated on."""
    from sdls.evaluation.problems import load_problems
    from sdls_model.checkpoint import save_checkpoint
    from sdls_model.config import ModelConfig
    from sdls_model.tokenizer import train_tokenizer
    from sdls_model.transformer import Transformer

    torch.manual_seed(0)
    tokenizer = train_tokenizer([p.prompt + p.solution for p in load_problems()[:20]], vocab_size=320)
    path = tmp_path_factory.mktemp("tiny") / "model"
    save_checkpoint(path, Transformer(ModelConfig.from_name("test-tiny", vocab_size=320)), tokenizer)
    return path


@pytest.fixture(scope="module")
def tasks():
    """A single-line, a multi-line and a repair task from different problems."""
    return [build_suite("single-line")[40], build_suite("multi-line")[100], build_suite("repair")[7]]


# -- pure figures -----------------------------------------------------------------------------
def test_percentile():
    assert percentile([], 50) == 0.0
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0, 0.0, 20.0], 100) == 20.0 and percentile([10.0, 0.0, 20.0], 0) == 0.0


def test_summarise_counts_passes_tokens_and_rates():
    records = [
        Record("x", f"t{i}", "", status, "", forwards=4, tokens=8, latency_ms=ms)
        for i, (status, ms) in enumerate([("passed", 10.0), ("failed", 20.0), ("error", 30.0), ("passed", 40.0)])
    ]
    s = summarise("x", {"rule": "threshold"}, records, seconds=2.0)
    assert (s.tasks, s.passed, s.errors) == (4, 2, 1)
    assert s.pass_at_1 == 50.0 and s.tokens_per_forward == 2.0
    assert s.forwards_per_s == 8.0 and s.tokens_per_s == 16.0
    assert s.latency_p50_ms == 25.0 and s.latency_p95_ms == pytest.approx(38.5)


def _summary(name: str, passed: int, tokens_per_forward: float, tasks: int = 1000) -> Summary:
    return Summary(
        name,
        {},
        tasks,
        passed,
        0,
        forwards=1000,
        tokens=int(tokens_per_forward * 1000),
        seconds=1.0,
        latency_p50_ms=1.0,
        latency_p95_ms=1.0,
    )


@pytest.mark.parametrize(
    "passed, tpf, met",
    [
        (496, 5.2, True),  # 0.4 points below the baseline, fast enough
        (510, 6.0, True),  # better than the baseline
        (489, 8.0, False),  # 1.1 points below
        (500, 4.9, False),  # not parallel enough
    ],
)
def test_goal_verdict(passed, tpf, met):
    verdict = goal_verdict([_summary("sequential", 500, 1.0), _summary("threshold 0.7", passed, tpf)])
    assert verdict["judged"] and verdict["met"] is met
    assert verdict["settings_meeting"] == (["threshold 0.7"] if met else [])


def test_goal_is_not_judged_without_the_baseline():
    assert goal_verdict([_summary("threshold 0.9", 500, 9.0)])["judged"] is False


# -- the runner's wiring, with engines whose answers we know ---------------------------------
class ScriptedEngine:
    """Answers every job with the canonical middle (or with `wrong`), committing 4 tokens per forward."""

    def __init__(self, tasks, wrong: str | None = None):
        self.by_prefix = {t.prefix: t for t in tasks}
        self.wrong = wrong

    def describe(self):
        return {"model": "scripted", "parameters": 0, "device": "cpu", "dtype": "none", "block_size": 4}

    def run(self, jobs):
        out = []
        for job in jobs:
            prefix = job.text[: job.start] if isinstance(job, EditJob) else job.prefix
            text = self.wrong if self.wrong is not None else self.by_prefix[prefix].middle
            out.append(JobResult(text, [0] * 8, JobStats(forwards=2, tokens_committed=8)))
        return out


def test_pass_at_1_comes_from_executing_the_candidates(tasks):
    configs = standard_configs(thresholds=(0.9,))
    right = evaluate(ScriptedEngine(tasks), tasks, configs, "mix", limits=LIMITS)
    wrong = evaluate(ScriptedEngine(tasks, wrong="    return None\n"), tasks, configs, "mix", limits=LIMITS)
    assert [s.pass_at_1 for s in right.configs] == [100.0] * 3
    assert [s.pass_at_1 for s in wrong.configs] == [0.0] * 3
    assert all(s.tokens_per_forward == 4.0 for s in right.configs)
    assert right.checks["canonical_passed"] == 3 and right.checks["unrepaired_total"] == 1
    assert right.checks["unrepaired_passed"] == 0
    assert right.checks["empty_total"] == 2 and right.checks["empty_passed"] == 0  # both lines matter


def test_ends_anywhere_adds_a_twin_of_each_threshold_row():
    configs = standard_configs(thresholds=(0.9, 0.5), reference=False, ends_anywhere=True)
    assert [c.name for c in configs] == [
        "sequential",
        "threshold 0.9",
        "threshold 0.9, ends anywhere",
        "threshold 0.5",
        "threshold 0.5, ends anywhere",
    ]
    assert [c.settings.ends_in_order for c in configs] == [True, True, False, True, False]
    assert configs[1].settings == replace(configs[2].settings, ends_in_order=True)


# -- end to end on a real (tiny, random) model ------------------------------------------------
def test_side_by_side_on_a_tiny_model_writes_table_plot_and_json(eval_model_dir, tasks, tmp_path):
    torch.set_num_threads(1)
    engine = Engine.from_dir(eval_model_dir)
    configs = standard_configs(thresholds=(0.9, 0.5))
    report = evaluate(engine, tasks, configs, "mix", limits=LIMITS, max_new_tokens=16)

    names = ["reference", "sequential", "threshold 0.9", "threshold 0.5"]
    assert [s.name for s in report.configs] == names
    assert len(report.records) == len(tasks) * len(names)
    assert all(r.status in STATUSES and r.forwards > 0 and r.latency_ms > 0 for r in report.records), report.records
    for s in report.configs:
        assert s.tasks == 3 and 0 <= s.passed <= 3 and s.forwards_per_s > 0 and s.latency_p95_ms >= s.latency_p50_ms
    infill = {t.task_id for t in tasks if not t.is_repair}
    for r in report.records:  # one token per step: an infill never commits more tokens than forwards
        if r.config in names[:2] and r.task_id in infill:
            assert 0 < r.tokens <= r.forwards, r
    assert report.checks["canonical_passed"] == 3

    paths = write_outputs(report, tmp_path / "out", command="sdls bench eval ...")
    tables = _tables(paths["markdown"].read_text())
    assert len(tables) == 2  # the figures, and pass counts per suite (this run mixes three)
    assert [len(row) for row in tables[0]] == [8] * 5 and [row[0] for row in tables[0][1:]] == names
    assert tables[1][0] == ["setting", "single-line passed", "multi-line passed", "repair passed"]
    assert all(row[3].endswith("/1") for row in tables[1][1:])
    import matplotlib.image

    image = matplotlib.image.imread(paths["plot"])
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG" and image.shape[0] > 200 and image.shape[1] > 300
    data = json.loads(paths["json"].read_text())
    assert data["n_tasks"] == 3 and [c["name"] for c in data["configs"]] == names
    assert {
        "pass_at_1",
        "tokens_per_forward",
        "forwards_per_s",
        "tokens_per_s",
        "latency_p50_ms",
        "latency_p95_ms",
    } <= set(data["configs"][0])
    assert data["goal"]["judged"] is True and len(data["records"]) == 12
    assert data["pass_by_suite"]["sequential"]["repair"]["tasks"] == 1
    assert _tables(markdown(report)) == tables


def _tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as rows of cells, separator rows dropped."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def test_cli_json_on_a_tiny_model(eval_model_dir, tmp_path):
    from sdls.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(
            [
                "bench",
                "eval",
                "--model",
                str(eval_model_dir),
                "--suite",
                "single-line",
                "--limit",
                "2",
                "--no-reference",
                "--thresholds",
                "0.7",
                "--max-new-tokens",
                "8",
                "--json",
                "--out",
                str(tmp_path / "cli"),
                "--threads",
                "1",
            ]
        )
    assert code == 0
    data = json.loads(out.getvalue())
    assert data["suite"] == "single-line" and data["n_tasks"] == 2
    assert [c["name"] for c in data["configs"]] == ["sequential", "threshold 0.7"]
    assert all(
        (tmp_path / "cli" / name).is_file() for name in ("report.md", "results.json", "pass_vs_tokens_per_forward.png")
    )


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    from sdls.cli import main

    assert main(["bench", "eval", "--limit", "0"]) == 2
    assert main(["bench", "eval", "--thresholds", "1.5"]) == 2
    assert main(["bench", "eval", "--model", str(tmp_path / "nowhere"), "--limit", "1"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_a_job_the_engine_refuses_is_an_error_record_not_a_crash(eval_model_dir, tasks):
    from sdls_model.checkpoint import load_checkpoint

    _cfg, model, tokenizer = load_checkpoint(eval_model_dir)
    engine = Engine(model, tokenizer, max_new_tokens=16)  # the repair body is longer than 16 tokens
    report = evaluate(
        engine, tasks, standard_configs(thresholds=(), reference=False), "mix", batch=3, limits=LIMITS, max_new_tokens=8
    )
    statuses = {r.task_id.split("/")[0]: (r.status, r.detail) for r in report.records}
    assert statuses["repair"][0] == "error" and "16" in statuses["repair"][1]
    assert statuses["single-line"][0] != "error" and statuses["multi-line"][0] != "error"
    assert report.configs[0].errors == 1 and "(1 errors)" in markdown(report)
