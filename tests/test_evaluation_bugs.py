"""Bug injection: each kind makes the change it names, and the bugs really break the programs."""

from __future__ import annotations

import ast
import collections

import pytest

from sdls.evaluation.bugs import KINDS, inject_bug
from sdls.evaluation.sandbox import Limits, run_programs
from sdls.evaluation.suites import build_suite, spread

PROMPT = 'def f(a, b):\n    """Doc."""\n'


def check(kind: str, body: str, allowed: set[str] | None):
    """Inject `kind` into body; `allowed` = the possible buggy bodies (None: the kind must not apply)."""
    bug = inject_bug("T/0", PROMPT, body, "f", kind)
    if allowed is None:
        assert bug is None, bug
        return
    assert bug is not None and bug.kind == kind
    assert bug.body in allowed, (bug.description, bug.body)
    ast.parse(PROMPT + bug.body)


def test_each_kind_makes_the_change_it_names():
    check("swapped-operator", "    return a < b\n", {"    return a > b\n"})
    check("swapped-operator", "    return a and b\n", {"    return a or b\n"})
    check("swapped-operator", "    return a\n", None)
    check("wrong-name", "    return a\n", {"    return b\n"})
    check("off-by-one", "    return a[2]\n", {"    return a[1]\n", "    return a[3]\n"})
    check("off-by-one", "    return a <= b\n", {"    return a < b\n"})
    check("deleted-line", "    c = a + 1\n    return c\n", {"    return c\n", "    c = a + 1\n"})
    check("deleted-line", "    return a\n", None)  # the only line: deleting it would not parse
    check("typo", "    return len(a)\n", {"    return eln(a)\n", "    return lne(a)\n"})


def test_bugs_are_deterministic():
    for kind in KINDS:
        first = inject_bug("T/7", PROMPT, "    total = a + b * 10\n    return total < 3\n", "f", kind)
        again = inject_bug("T/7", PROMPT, "    total = a + b * 10\n    return total < 3\n", "f", kind)
        assert first == again


def test_repair_suite_uses_every_kind_and_every_bug_parses():
    tasks = build_suite("repair")
    kinds = collections.Counter(t.bug.split(":")[0] for t in tasks)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 15, kinds
    for t in tasks:
        ast.parse(t.problem.prompt + t.given)


@pytest.mark.slow
def test_buggy_programs_fail_their_tests_for_most_problems():
    tasks = spread(build_suite("repair"), 82)  # every other problem, all kinds
    outcomes = run_programs([t.program(t.given) for t in tasks], Limits(seconds=3))
    failed = sum(not o.passed for o in outcomes)
    assert failed >= 0.9 * len(tasks), [(t.task_id, t.bug) for t, o in zip(tasks, outcomes) if o.passed]
