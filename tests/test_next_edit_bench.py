"""`sdls bench nextedit`'s parts: cases built by a real refactoring, the replay, the oracle, the scoring."""

from __future__ import annotations

import asyncio
import sysconfig
from pathlib import Path

from sdls.lsp.bench_nextedit import OracleBackend, is_right, pick_cases, replay
from sdls.lsp.next_edit_cases import KINDS, cases_from
from sdls.lsp.settings import NextEditSettings
from sdls.syntax import SyntaxDocument, syntax_errors

LIB = Path(sysconfig.get_paths()["stdlib"])
SRC = "def f(a, b, unused):\n    return a + b\n\n\nf(1, 2, 3)\nx = f(4, 5, 6)\n"


def test_cases_are_real_refactorings_that_parse_and_change_every_site():
    cases = pick_cases([LIB / "textwrap.py", LIB / "copy.py"], 2)
    assert {c.kind for c in cases} == set(KINDS)
    for case in cases:
        assert len(case.sites) >= 2 and case.target != case.text
        assert syntax_errors(SyntaxDocument(case.target, "python")) == []


def test_a_removed_parameter_case_drops_the_argument_at_every_call():
    (case,) = [c for c in cases_from("f.py", SRC, 5) if c.kind == "remove-param"]
    assert case.target == "def f(a, b):\n    return a + b\n\n\nf(1, 2)\nx = f(4, 5)\n"


def test_right_means_the_touched_lines_now_read_as_the_target_and_nothing_moved_away():
    target = "a2\nb2\nc\n"
    assert is_right("a2\nb\nc\n", "a2\nb2\nc\n", target)
    assert not is_right("a2\nb\nc\n", "a2\nb2\nX\n", target)  # fixed one line, broke another
    assert not is_right("a2\nb\nc\n", "a2\nbb\nc\n", target)  # changed, but not to the target
    assert not is_right("a2\nb\nc\n", "a2\nb2\n\nc\n", target)  # the line count moved


def test_the_oracle_finds_the_next_site_the_rules_alone_too_and_no_model_no_rules_nothing():
    (case,) = [c for c in cases_from("f.py", SRC, 5) if c.kind == "remove-param"]
    oracle = asyncio.run(replay(case, NextEditSettings(debounce_ms=0), OracleBackend(lambda: "", case.target), None))
    rechecked = asyncio.run(
        replay(case, NextEditSettings(debounce_ms=0, rewrite_rules=True), OracleBackend(lambda: "", case.target), None)
    )
    rules = asyncio.run(replay(case, NextEditSettings(debounce_ms=0, model=False), None, None))
    neither = asyncio.run(replay(case, NextEditSettings(debounce_ms=0, model=False, rules=False), None, None))
    assert oracle["right"] and oracle["source"] == "rule"  # the rule's proposal stands, the model unasked
    assert rechecked["right"] and rechecked["source"] == "rule+model"  # re-checked by an edit job and kept
    assert rules["right"] and rules["source"] == "rule"
    assert not neither["right"] and neither["source"] == "none"
