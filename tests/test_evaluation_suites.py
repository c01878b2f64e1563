"""Suites built from HumanEval: counts, the hidden middle is really the canonical text, programs pass."""

from __future__ import annotations

import pytest

from sdls.evaluation.problems import load_problems
from sdls.evaluation.sandbox import Limits, run_programs
from sdls.evaluation.suites import CI_MIX, build_suite, spread


@pytest.fixture(scope="module")
def suites():
    return {name: build_suite(name) for name in ("single-line", "multi-line", "full-body", "repair", "ci")}


def test_counts(suites):
    assert len(load_problems()) == 164
    assert len(suites["single-line"]) == 1033  # Bavarian et al.'s single-line count
    assert len(suites["full-body"]) == 164 and len(suites["repair"]) == 164
    assert len(suites["multi-line"]) == 665  # pinned: the seeded span draw must not drift
    assert len(suites["ci"]) == sum(n for _, n in CI_MIX)
    for name, tasks in suites.items():
        assert len({t.task_id for t in tasks}) == len(tasks), f"{name}: duplicate task ids"


def test_every_split_reassembles_the_canonical_program(suites):
    for tasks in suites.values():
        for t in tasks:
            assert t.prefix + t.middle + t.suffix == t.problem.prompt + t.problem.solution, t.task_id
            assert t.body(t.middle) == t.problem.solution


def test_single_line_masks_each_canonical_line_once(suites):
    by_problem: dict[str, list[str]] = {}
    for t in suites["single-line"]:
        assert t.middle.strip() and t.middle.count("\n") == 1 and t.middle.endswith("\n"), t.task_id
        line_no = int(t.task_id.rsplit("/L", 1)[1])
        assert t.middle == t.problem.solution.splitlines(keepends=True)[line_no]
        assert t.prefix.endswith("\n")  # the hole starts at a line start, indentation included
        by_problem.setdefault(t.problem.problem_id, []).append(t.middle)
    for p in load_problems():
        assert by_problem[p.problem_id] == [line for line in p.solution.splitlines(keepends=True) if line.strip()]


def test_multi_line_spans_are_2_to_8_lines_and_deterministic(suites):
    for t in suites["multi-line"]:
        lines = t.middle.splitlines()
        assert 2 <= len(lines) <= 8, t.task_id
        assert lines[0].strip() and lines[-1].strip(), t.task_id
    lengths = {}
    for t in suites["multi-line"]:
        lengths.setdefault(t.problem.problem_id, []).append(len(t.middle.splitlines()))
    assert all(len(v) == len(set(v)) for v in lengths.values()), "one span per length per problem"
    assert [t.task_id for t in build_suite("multi-line")] == [t.task_id for t in suites["multi-line"]]


def test_full_body_and_repair_layout(suites):
    for t in suites["full-body"]:
        assert t.prefix == t.problem.prompt and t.suffix == "" and t.middle == t.problem.solution
    for t in suites["repair"]:
        assert t.given != t.middle and t.bug and t.is_repair and t.max_new_tokens == 0


def test_spread_covers_the_suite_and_respects_limits(suites):
    tasks = suites["single-line"]
    picked = spread(tasks, 20)
    assert len(picked) == 20 and picked[0] is tasks[0]
    assert len({t.problem.problem_id for t in picked}) == 20  # not the first problem's lines only
    assert spread(tasks, None) == tasks and spread(tasks, 5000) == tasks and spread(tasks, 0) == []
    assert [t.task_id for t in build_suite("single-line", limit=20)] == [t.task_id for t in picked]
    with pytest.raises(ValueError, match="unknown suite"):
        build_suite("mbpp")


def test_canonical_middles_pass_and_wrong_ones_fail(suites):
    sample = [t for name in ("single-line", "multi-line", "full-body", "repair") for t in spread(suites[name], 6)]
    wrong = list(spread(suites["full-body"], 6))
    outcomes = run_programs(
        [t.program(t.middle) for t in sample] + [t.program("    return None\n") for t in wrong], Limits(seconds=10)
    )
    good, bad = outcomes[: len(sample)], outcomes[len(sample) :]
    assert all(o.passed for o in good), [(t.task_id, o) for t, o in zip(sample, good) if not o.passed]
    assert not any(o.passed for o in bad)
