"""`sdls bench nextedit`: replay real multi-site edits and measure the next-edit suggestion after the first.

Cases come from real files (next_edit_cases.py: renames, an argument added at every call, a removed
parameter). For each, the document opens as it was, the user's edit (the first site) is typed a
keystroke at a time through the same calls the server makes on didChange (DocumentStore.change,
NextEdits.observe), and the suggestion is asked for as a request would (NextEdits.request, no
prefetch). Measured in this process, without the JSON-RPC hop:
- right next edit: applying the first suggestion makes its line(s) read as the refactored file's,
  and nothing else moves away from it;
- latency p50/p95 from the end of the user's edit to the suggestion;
- forwards per suggestion: every forward of the transformer during the request (a torch hook).
Rows: a scripted oracle (knows the refactored file: doubts exactly the lines still to change and
writes them when asked), which bounds what the plumbing (candidate sites, windows, checks) allows; the
shipped model; each with the rules (their proposals standing, or "rewriting": re-checked by an edit
job, `nextEdit.rewriteRules`) and without them; and the rules alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sysconfig
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sdls_model.jobs import JobResult, JobStats, minimal_edits

from .documents import DocumentStore
from .model_call import ModelCall
from .next_edit_cases import KINDS, Case, cases_from
from .settings import NextEditSettings, Settings

DEFAULT_FILES = (
    "textwrap.py",
    "shlex.py",
    "difflib.py",
    "configparser.py",
    "argparse.py",
    "csv.py",
    "copy.py",
    "inspect.py",
    "shutil.py",
    "ftplib.py",
)
ROWS = (
    "oracle + rules",
    "oracle rewriting rules",
    "oracle, no rules",
    "model + rules",
    "model rewriting rules",
    "model, no rules",
    "rules alone",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--files", nargs="*", default=None, help=f"Python files (default: {len(DEFAULT_FILES)} from the stdlib)"
    )
    parser.add_argument("--per-kind", type=int, default=10, help="cases of each kind (spread over the files)")
    parser.add_argument(
        "--rows", nargs="*", default=list(ROWS), choices=ROWS, metavar="ROW", help=f"rows to run: {ROWS}"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def pick_cases(files: list[Path], per_kind: int) -> list[Case]:
    by_kind: dict[str, list[Case]] = {k: [] for k in KINDS}
    for path in files:
        for case in cases_from(path.name, path.read_text(encoding="utf-8"), per_kind):
            by_kind[case.kind].append(case)
    out = []
    for kind in KINDS:
        found = by_kind[kind]
        step = max(1, len(found) // per_kind)
        out += found[::step][:per_kind]
    return out


class OracleBackend:
    """A model that knows the refactored file: it doubts exactly the lines still to change and, asked to
    revise a region, writes those lines as the refactored file has them (line counts are unchanged)."""

    def __init__(self, current, target: str):
        self.current = current  # () -> the document's text now
        self.target_lines = target.split("\n")

    def _first_line(self, text: str, region_start: int) -> int | None:
        prefix = text[:region_start]
        at = self.current().find(prefix)
        return None if at < 0 else self.current().count("\n", 0, at + len(prefix))

    async def doubt(self, text: str, start: int, end: int) -> list[tuple[int, int, float]]:
        first = self._first_line(text, start)
        if first is None:
            return []
        spans, pos = [], start
        for k, line in enumerate(text[start:end].split("\n")):
            want = self.target_lines[first + k] if first + k < len(self.target_lines) else line
            for e in minimal_edits(line, want, pos):
                spans.append((e.start, max(e.end, e.start + 1), 0.001))
            pos += len(line) + 1
        return spans

    async def run(self, job, lane: str = "inline") -> JobResult:
        first = self._first_line(job.text, job.start)
        old = job.text[job.start : job.end]
        n = old.count("\n") + 1
        new = "\n".join(self.target_lines[first : first + n]) if first is not None else old
        return JobResult(new, [], JobStats(forwards=0), False, minimal_edits(old, new, job.start))


@dataclass
class Row:
    name: str
    right: int = 0
    cases: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    forwards: list[int] = field(default_factory=list)
    by_kind: Counter = field(default_factory=Counter)
    kind_cases: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)


def _keystrokes(case: Case) -> list[tuple[int, int, str]]:
    """The user's edit (the first site) as an editor sends it: a deletion, then one character at a time."""
    s = case.sites[0]
    steps = [(s.start, s.end, "")] if s.end > s.start else []
    return steps + [(s.start + k, s.start + k, ch) for k, ch in enumerate(s.new_text)]


def is_right(state: str, suggested: str, target: str) -> bool:
    """Does the suggestion move the file towards the refactored one, line for line, and nowhere away?"""
    a, b, t = state.split("\n"), suggested.split("\n"), target.split("\n")
    if not (len(a) == len(b) == len(t)):
        return False
    before = {i for i in range(len(t)) if a[i] != t[i]}
    after = {i for i in range(len(t)) if b[i] != t[i]}
    return after < before


async def replay(case: Case, settings: NextEditSettings, backend, counter: list[int] | None) -> dict:
    from .next_edit_state import NextEdits

    store = DocumentStore()
    doc = store.open(f"file:///bench/{case.path}", "python", 1, case.text)
    ne = NextEdits(lambda: settings)
    if backend is not None:
        if isinstance(backend, OracleBackend):
            backend.current = lambda: doc.text
        call = ModelCall.from_settings(Settings(), backend)

        async def model_call():
            return call

        ne.model_call = model_call
    for start, end, new in _keystrokes(case):
        before = doc.text
        (sl, sc), (el, ec) = doc.position(start), doc.position(end)
        doc = store.change(doc.uri, doc.version + 1, [((sl, sc, el, ec), new)])
        ne.observe(doc, before, start)
    state = doc.text
    forwards0 = counter[0] if counter else 0
    started = time.perf_counter()
    suggestion, reason = await ne.request(doc, doc.version)
    ms = (time.perf_counter() - started) * 1e3
    forwards = (counter[0] - forwards0) if counter else 0
    if suggestion is None:
        return {"right": False, "ms": ms, "forwards": forwards, "source": "none", "reason": reason}
    e = suggestion.edit
    after = state[: e.start] + e.text + state[e.end :]
    return {"right": is_right(state, after, case.target), "ms": ms, "forwards": forwards, "source": e.source}


def _model_backend(args):
    import torch

    from sdls.worker.inprocess import InProcessBackend
    from sdls_model.engine import Engine

    torch.set_num_threads(args.threads)
    engine = Engine.from_dir(args.model, device="cpu", dtype=args.dtype)
    counter = [0]

    def count(*_):
        counter[0] += 1

    engine.model.register_forward_hook(count)  # every forward, doubt passes included
    return InProcessBackend(engine), counter, engine.describe()


async def run_rows(args, cases: list[Case]) -> tuple[list[Row], dict]:
    rows, info = [], {}
    model = None
    for name in args.rows:
        settings = NextEditSettings(
            debounce_ms=0, rules="no rules" not in name, model=name != "rules alone", rewrite_rules="rewriting" in name
        )
        if name.startswith("model") and model is None:
            model = _model_backend(args)
            info = model[2]
        row = Row(name)
        for case in cases:
            if name.startswith("oracle"):
                backend, counter = OracleBackend(lambda: case.text, case.target), None
            elif name.startswith("model"):
                backend, counter = model[0], model[1]
            else:
                backend, counter = None, None
            got = await replay(case, settings, backend, counter)
            row.cases += 1
            row.kind_cases[case.kind] += 1
            row.right += got["right"]
            row.by_kind[case.kind] += got["right"]
            row.latencies_ms.append(got["ms"])
            row.forwards.append(got["forwards"])
            row.sources[got["source"]] += 1
        rows.append(row)
    if model is not None:
        await model[0].close()
    return rows, info


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(rows: list[Row]) -> list[dict]:
    out = []
    for r in rows:
        out.append(
            {
                "row": r.name,
                "right": r.right,
                "cases": r.cases,
                "right_pct": round(100 * r.right / r.cases, 1) if r.cases else 0.0,
                "by_kind": {k: f"{r.by_kind[k]}/{r.kind_cases[k]}" for k in KINDS if r.kind_cases[k]},
                "p50_ms": round(_pct(r.latencies_ms, 0.5), 1),
                "p95_ms": round(_pct(r.latencies_ms, 0.95), 1),
                "forwards_per_suggestion": round(statistics.mean(r.forwards), 1) if r.forwards else 0.0,
                "sources": dict(r.sources),
            }
        )
    return out


def run(args: argparse.Namespace) -> int:
    lib = Path(sysconfig.get_paths()["stdlib"])
    files = [Path(f) for f in args.files] if args.files else [lib / f for f in DEFAULT_FILES]
    cases = pick_cases(files, args.per_kind)
    if not cases:
        print("sdls bench nextedit: no cases found in the given files")
        return 1
    rows, info = asyncio.run(run_rows(args, cases))
    table = summary(rows)
    if args.json:
        print(json.dumps({"cases": len(cases), "model": info, "rows": table}, indent=2))
        return 0
    kinds = Counter(c.kind for c in cases)
    print(f"{len(cases)} cases from {len(files)} files: " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
    if info:
        print(f"model: {info.get('name') or info}")
    print(
        "| row | right next edit | "
        + " | ".join(k for k in KINDS if kinds[k])
        + " | p50 / p95 ms | forwards/suggestion | sources |"
    )
    print("|---|---|" + "---|" * sum(1 for k in KINDS if kinds[k]) + "---|---|---|")
    for t in table:
        per_kind = " | ".join(t["by_kind"].get(k, "-") for k in KINDS if kinds[k])
        sources = ", ".join(f"{s} {n}" for s, n in sorted(t["sources"].items(), key=lambda kv: -kv[1]))
        print(
            f"| {t['row']} | {t['right']}/{t['cases']} ({t['right_pct']}%) | {per_kind} | "
            f"{t['p50_ms']} / {t['p95_ms']} | {t['forwards_per_suggestion']} | {sources} |"
        )
    return 0
