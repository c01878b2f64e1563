"""Evaluation suites built from the 164 HumanEval problems.

Every task is one program split in three: `prefix + middle + suffix`, followed by the problem's tests.
An infill task hides `middle` and asks the model for it; a repair task shows a buggy `given` middle
and asks the fix-up path to revise it. Either way a candidate passes iff
`problem.program(body)` passes, with the body rebuilt from the candidate middle.

- single-line: each non-blank line of each canonical body masked in turn, the whole line including
  its indentation and newline (Bavarian et al. 2022: 1,033 tasks).
- multi-line: contiguous spans of 2 to 8 lines that start and end on a non-blank line. For each problem
  and each span length L that fits, one span, its start drawn by `random.Random("sdls-multi-line:<id>:<L>")`
  (string seeds hash with SHA-512, so every machine draws the same spans).
- full-body: the signature and docstring as prefix, an empty suffix, the whole canonical body as middle.
- repair: the canonical body with one injected bug (see bugs.py) as the region an `EditJob` revises.
- ci: a fixed CPU-sized mix of the above, spread over the problems (see CI_MIX).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .bugs import bug_for_problem
from .problems import Problem, load_problems

SUITES = ("single-line", "multi-line", "full-body", "repair", "ci")
# Generation budgets in tokens, the same for every decoding setting so the comparison stays fair. They hold
# every canonical middle with room to spare: with the shipped 8k tokenizer the longest are 53 (single line),
# 156 (multi-line) and 288 (full body) tokens. A model that stops early never decodes the spare blocks.
MAX_NEW_TOKENS = {"single-line": 64, "multi-line": 192, "full-body": 320, "repair": 0}
# The CPU subset: (suite, tasks); each part is spread evenly over its suite (see `spread`).
CI_MIX = (("single-line", 16), ("multi-line", 6), ("full-body", 4), ("repair", 6))


@dataclass(frozen=True)
class Task:
    task_id: str  # "single-line/HumanEval/3/L2"
    suite: str
    problem: Problem
    prefix: str  # text before the middle (for infill: what the model sees before the hole)
    middle: str  # the canonical middle
    suffix: str  # text after the middle
    max_new_tokens: int  # infill budget; 0 for repair
    given: str | None = None  # repair: the buggy middle the fix-up revises
    bug: str | None = None  # repair: what was injected, e.g. "typo: line 2: numbers -> nubmers"

    @property
    def is_repair(self) -> bool:
        return self.given is not None

    def body(self, middle: str) -> str:
        """The function body with `middle` in place of the canonical one."""
        return (self.prefix + middle + self.suffix)[len(self.problem.prompt) :]

    def program(self, middle: str) -> str:
        return self.problem.program(self.body(middle))


def _lines(problem: Problem) -> list[str]:
    return problem.solution.splitlines(keepends=True)


def _span_task(suite: str, problem: Problem, first: int, last: int, name: str) -> Task:
    """Mask lines first..last (inclusive) of the canonical body."""
    lines = _lines(problem)
    return Task(
        task_id=f"{suite}/{problem.problem_id}/{name}",
        suite=suite,
        problem=problem,
        prefix=problem.prompt + "".join(lines[:first]),
        middle="".join(lines[first : last + 1]),
        suffix="".join(lines[last + 1 :]),
        max_new_tokens=MAX_NEW_TOKENS[suite],
    )


def single_line_tasks(problem: Problem) -> list[Task]:
    return [_span_task("single-line", problem, i, i, f"L{i}") for i, line in enumerate(_lines(problem)) if line.strip()]


def multi_line_tasks(problem: Problem) -> list[Task]:
    lines = _lines(problem)
    filled = [i for i, line in enumerate(lines) if line.strip()]
    tasks = []
    for length in range(2, 9):
        spans = [(a, a + length - 1) for a in filled if a + length - 1 in filled]
        if spans:
            first, last = random.Random(f"sdls-multi-line:{problem.problem_id}:{length}").choice(spans)
            tasks.append(_span_task("multi-line", problem, first, last, f"L{first}-{last}"))
    return tasks


def full_body_task(problem: Problem) -> Task:
    return Task(
        task_id=f"full-body/{problem.problem_id}",
        suite="full-body",
        problem=problem,
        prefix=problem.prompt,
        middle=problem.solution,
        suffix="",
        max_new_tokens=MAX_NEW_TOKENS["full-body"],
    )


def repair_task(problem: Problem) -> Task:
    bug = bug_for_problem(problem.problem_id, problem.index, problem.prompt, problem.solution, problem.entry_point)
    return Task(
        task_id=f"repair/{problem.problem_id}",
        suite="repair",
        problem=problem,
        prefix=problem.prompt,
        middle=problem.solution,
        suffix="",
        max_new_tokens=0,
        given=bug.body,
        bug=f"{bug.kind}: {bug.description}",
    )


def spread(tasks: list[Task], n: int | None) -> list[Task]:
    """`n` tasks evenly spaced over the list (covering many problems, not the first few); all if n is None."""
    if n is None or n >= len(tasks):
        return list(tasks)
    if n <= 0:
        return []
    return [tasks[(i * len(tasks)) // n] for i in range(n)]


def build_suite(name: str, limit: int | None = None) -> list[Task]:
    """The tasks of suite `name` in a fixed order; `limit` keeps that many, spread over the suite."""
    problems = load_problems()
    if name == "single-line":
        tasks = [t for p in problems for t in single_line_tasks(p)]
    elif name == "multi-line":
        tasks = [t for p in problems for t in multi_line_tasks(p)]
    elif name == "full-body":
        tasks = [full_body_task(p) for p in problems]
    elif name == "repair":
        tasks = [repair_task(p) for p in problems]
    elif name == "ci":
        tasks = [t for part, n in CI_MIX for t in spread(build_suite(part), n)]
    else:
        raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITES)}")
    return spread(tasks, limit)
