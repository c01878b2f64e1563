"""Write what a run measured: a markdown table, a PNG plot (pass@1 against tokens per forward), JSON."""

from __future__ import annotations

import json
from pathlib import Path

from .metrics import BASELINE, GOAL_MAX_DROP_POINTS, GOAL_TOKENS_PER_FORWARD, Summary, pass_by_suite
from .runner import Report

COLUMNS = (
    "setting",
    "pass@1 (%)",
    "passed",
    "tokens/forward",
    "forwards/s",
    "tokens/s",
    "latency p50 (ms)",
    "latency p95 (ms)",
)


def table_rows(summaries: list[Summary]) -> list[tuple[str, ...]]:
    rows = []
    for s in summaries:
        errors = f" ({s.errors} errors)" if s.errors else ""
        rows.append(
            (
                s.name,
                f"{s.pass_at_1:.1f}",
                f"{s.passed}/{s.tasks}{errors}",
                f"{s.tokens_per_forward:.2f}",
                f"{s.forwards_per_s:.1f}",
                f"{s.tokens_per_s:.1f}",
                f"{s.latency_p50_ms:.0f}",
                f"{s.latency_p95_ms:.0f}",
            )
        )
    return rows


def markdown(report: Report, command: str = "") -> str:
    m, c, g = report.model, report.checks, report.goal
    lines = [f"# HumanEval {report.suite}: {len(report.tasks)} tasks, side by side", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        f"Model: {m.get('model') or '(unnamed)'}; {m.get('parameters', 0) / 1e6:.1f}M parameters, "
        f"{m.get('attention')}, block size {m.get('block_size')}; {m.get('device')} {m.get('dtype')}; "
        f"batch {report.settings.get('batch')}.",
        "",
    ]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report.configs)]
    by_suite = pass_by_suite(report.records)
    suites = list(dict.fromkeys(s for per in by_suite.values() for s in per))
    if len(suites) > 1:  # a mixed run (the ci suite): pass@1 of each part
        lines += ["", "| setting | " + " | ".join(f"{s} passed" for s in suites) + " |", "|---|" + "---|" * len(suites)]
        for name, per in by_suite.items():
            lines.append(f"| {name} | " + " | ".join(f"{per[s][0]}/{per[s][1]}" for s in suites) + " |")
    lines += [
        "",
        "reference: fixed rule, 1 token/step, no cache (full recompute every step); "
        "sequential: fixed rule, 1 token/step, block cache; threshold t: commit every masked position "
        "with confidence >= t (at least one per step), block cache. Latency: wall time per task.",
    ]
    lines += ["", f"Harness check: canonical middles pass {c['canonical_passed']}/{c['canonical_total']}."]
    if c.get("empty_total"):
        lines.append(
            f"Empty middles pass {c['empty_passed']}/{c['empty_total']} (what a model that writes nothing scores)."
        )
    if c["unrepaired_total"]:
        lines.append(
            f"Unrepaired bugs pass {c['unrepaired_passed']}/{c['unrepaired_total']} "
            f"(what a fix-up that changes nothing scores)."
        )
    if g.get("judged"):
        verdict = f"met by {', '.join(g['settings_meeting'])}" if g["met"] else "not met"
        lines.append(
            f"Goal (>= {GOAL_TOKENS_PER_FORWARD:g} tokens/forward with pass@1 within "
            f"{GOAL_MAX_DROP_POINTS:g} point of {BASELINE}, {g['baseline_pass_at_1']:.1f}%): {verdict}."
        )
    else:
        lines.append(f"Goal not judged: {g.get('reason')}.")
    iso = report.isolation
    lines.append(
        f"Sandbox: temp dir, rlimits ({', '.join(iso['rlimits'])}), audit hook {'on' if iso['audit_hook'] else 'off'}, "
        f"network namespace: {iso['network_namespace'] or 'unavailable'}; "
        f"{report.settings.get('time_limit_s')} s, {report.settings.get('memory_mb')} MB per program."
    )
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> Path:
    """pass@1 against tokens committed per forward, one point per setting; the sweep joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    sweep = [s for s in report.configs if s.name.startswith("threshold")]
    if sweep:
        ordered = sorted(sweep, key=lambda s: s.tokens_per_forward)
        ax.plot(
            [s.tokens_per_forward for s in ordered],
            [s.pass_at_1 for s in ordered],
            "-o",
            color="tab:blue",
            label="threshold decoding",
        )
    for i, s in enumerate(report.configs):
        marker = {"reference": ("s", "tab:red"), BASELINE: ("D", "tab:green")}.get(s.name, (None, None))
        if marker[0]:
            ax.plot([s.tokens_per_forward], [s.pass_at_1], marker[0], color=marker[1], label=s.name)
        else:
            ax.annotate(
                s.name.removeprefix("threshold "),
                (s.tokens_per_forward, s.pass_at_1),
                textcoords="offset points",
                xytext=(4, 4 + 9 * (i % 3)),
                fontsize=8,
            )  # staggered: close points
    base = next((s for s in report.configs if s.name == BASELINE), None)
    if base is not None:
        ax.axhline(base.pass_at_1 - GOAL_MAX_DROP_POINTS, ls=":", color="gray", lw=1, label=f"{BASELINE} - 1 point")
    ax.axvline(
        GOAL_TOKENS_PER_FORWARD, ls="--", color="gray", lw=1, label=f"{GOAL_TOKENS_PER_FORWARD:g} tokens/forward"
    )
    ax.set_xlabel("tokens committed per forward")
    ax.set_ylabel("pass@1 (%)")
    ax.set_title(f"HumanEval {report.suite} ({len(report.tasks)} tasks): quality vs parallelism", fontsize=10)
    ax.set_xlim(left=0)
    best = max((s.pass_at_1 for s in report.configs), default=0.0)
    ax.set_ylim(-2, min(102, max(10.0, best + 8)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(report: Report, out_dir: Path, command: str = "") -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "report.md",
        "plot": out_dir / "pass_vs_tokens_per_forward.png",
        "json": out_dir / "results.json",
    }
    paths["markdown"].write_text(markdown(report, command))
    plot(report, paths["plot"])
    paths["json"].write_text(json.dumps({**report.as_dict(), "command": command}, indent=1) + "\n")
    return paths
