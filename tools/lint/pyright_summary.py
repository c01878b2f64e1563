"""Summarise `pyright --outputjson`: counts per rule, every error in full; exit 1 on any error.

Unresolved imports are errors (pyproject.toml [tool.pyright]); the findings downgraded to warnings
are counted per rule so the figure stays in sight.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def main(path: str) -> int:
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        print(f"pyright: no report in {path} ({exc}); did pyright run?", file=sys.stderr)
        return 1
    diagnostics = report.get("generalDiagnostics", [])
    errors = [d for d in diagnostics if d.get("severity") == "error"]
    warnings = Counter(d.get("rule", "?") for d in diagnostics if d.get("severity") == "warning")
    unresolved = sum(1 for d in diagnostics if d.get("rule") == "reportMissingImports")
    for d in errors:
        line = d.get("range", {}).get("start", {}).get("line", -1) + 1
        print(f"{d.get('file')}:{line}: error: {d.get('message')} ({d.get('rule', '')})")
    summary = report.get("summary", {})
    print(
        f"pyright {report.get('version', '?')}: {summary.get('filesAnalyzed', '?')} files, "
        f"{len(errors)} errors, {unresolved} unresolved imports, {sum(warnings.values())} warnings"
    )
    for rule, n in warnings.most_common():
        print(f"  {n:4d} {rule}")
    return 1 if errors or not summary.get("filesAnalyzed") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
