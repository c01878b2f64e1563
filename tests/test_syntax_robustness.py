"""Broken code and junk model output are normal input: never an exception, always sane ranges.
Plus a smoke run of the benchmark and concurrent parsing from threads."""

from __future__ import annotations

import argparse
import itertools
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from sdls.syntax import (
    SyntaxDocument,
    bench_syntax,
    clean_completion,
    completion_scope,
    find_holes,
    plan_blocks,
    syntax_errors,
)

_CODE_PIECES = [
    "def ",
    "f",
    "(",
    ")",
    ":",
    "\n",
    "    ",
    "\t",
    "'",
    '"',
    '"""',
    "#",
    "{",
    "}",
    "[",
    "]",
    "x",
    " = ",
    "1",
    "+",
    ",",
    "é",
    "😀",
    "end",
    "then",
    "//",
    "/*",
    "*/",
    "--",
    "`",
    "pass",
    "...",
    "return ",
    "class ",
    "\r\n",
    "\\",
]
code = st.lists(st.sampled_from(_CODE_PIECES), max_size=30).map("".join)
languages = st.sampled_from(["python", "javascript", "typescript", "tsx", "go", "rust", "lua", "text"])


@settings(max_examples=150, deadline=None)
@given(source=code, model_text=code, where=st.floats(0, 1), invoked=st.booleans(), language=languages)
def test_scope_and_cleanup_never_fail_on_junk(source, model_text, where, invoked, language):
    doc = SyntaxDocument(source, language)
    offset = int(where * len(source))
    scope = completion_scope(doc, offset, invoked)
    assert scope.kind in ("none", "line", "block")
    assert offset <= scope.replace_end <= doc.line_bounds(offset)[1]
    assert "\n" not in source[offset : scope.replace_end]  # a single-line replacement range
    cleaned = clean_completion(doc, offset, model_text, scope)
    assert offset <= cleaned.replace_end <= scope.replace_end
    if cleaned.rejected is None:
        assert cleaned.text.strip()
        if scope.kind == "line":
            assert "\n" not in cleaned.text
        if doc.tree is not None and not syntax_errors(doc):  # clean code stays clean
            after = doc.with_edit(offset, cleaned.replace_end, cleaned.text)
            assert syntax_errors(after) == []


@settings(max_examples=80, deadline=None)
@given(source=code, cuts=st.lists(st.floats(0, 1), max_size=4), language=languages)
def test_finding_work_and_planning_never_fail_on_junk(source, cuts, language):
    doc = SyntaxDocument(source, language)
    for issue in syntax_errors(doc):
        assert 0 <= issue.start <= issue.end <= len(source)
    for hole in find_holes(doc):
        assert hole.enclosing_start <= hole.start <= hole.end <= hole.enclosing_end
    points = sorted({int(c * len(source)) for c in cuts} | {0, len(source)})
    regions = list(itertools.pairwise(points))
    plan = plan_blocks(doc, regions)
    covered = sum(b.end - b.start for b in plan.blocks)
    assert covered == len(source)  # blocks tile the regions exactly
    assert sorted(i for w in plan.waves for i in w) == list(range(len(plan.blocks)))


def test_parsing_from_several_threads_at_once():
    text = "".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(300))
    results: list[str] = []
    failures: list[BaseException] = []

    def work():
        try:
            for _ in range(5):
                doc = SyntaxDocument(text, "python")
                doc.apply_edit(10, 10, "y")
                results.append(str(doc.tree.root_node)[:40])
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(results) == 20 and len(set(results)) == 1


def test_benchmark_runs_on_small_inputs(tmp_path, capsys):
    (tmp_path / "small.py").write_text("class A:\n    def f(self):\n        pass\n\nx = A()\n" * 20)
    parser = argparse.ArgumentParser()
    bench_syntax.add_arguments(parser)
    args = parser.parse_args(["--lines", "200", "--files", "1", "--repeat", "2", "--stdlib", str(tmp_path)])
    assert bench_syntax.run(args) == 0
    out = capsys.readouterr().out
    assert (
        "reparse, edit inside a word" in out
        and "at a line start" in out
        and "small.py" in out
        and "plan_blocks, largest class" in out
    )
    assert bench_syntax.generated_python(200).count("\n") == 200


_VALID = [
    ("x = foo(1)\n", "python"),
    ("def f(a):\n    return a\n", "python"),
    ("class A:\n    def f(self):\n        return [1, 2]\n", "python"),
    ("function f(a) {\n  return a;\n}\n", "javascript"),
    ("if x then\n  y = 1\nend\n", "lua"),
    ("fn f() -> i32 {\n    1\n}\n", "rust"),
    ("package main\n\nfunc f() int {\n\treturn 1\n}\n", "go"),
]


@settings(max_examples=150, deadline=None)
@given(case=st.sampled_from(_VALID), where=st.floats(0, 1), model_text=code, invoked=st.booleans())
def test_accepted_candidates_keep_valid_code_valid(case, where, model_text, invoked):
    source, language = case
    doc = SyntaxDocument(source, language)
    assert syntax_errors(doc) == []
    offset = int(where * len(source))
    scope = completion_scope(doc, offset, invoked)
    cleaned = clean_completion(doc, offset, model_text, scope)
    if cleaned.rejected is None:
        after = doc.with_edit(offset, cleaned.replace_end, cleaned.text)
        assert syntax_errors(after) == [], (after.text, cleaned)
    else:
        assert cleaned.rejected.strip()  # a rejection always says why
