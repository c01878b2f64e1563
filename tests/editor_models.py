"""Which model the editor end-to-end tests run on.

Ghost text and code-action edits need a model that writes code: SDLS_EDITOR_TEST_MODEL if set, else
the shipped model (model/default). None when neither exists; the tests then say so and skip.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def trained_model() -> Path | None:
    given = os.environ.get("SDLS_EDITOR_TEST_MODEL")
    if given:
        return Path(given)
    from sdls_model.checkpoint import default_model_dir
    shipped = default_model_dir()
    return shipped if (shipped / "config.json").exists() else None


def offered_completion(model: Path, text: str, line: int, col: int, folder: Path) -> tuple[str, str]:
    """What the model offers at (line, col) of `text`, through `sdls complete` (the server's own code
    path): (completion text, reason when empty). Tells "the model has nothing here" from an editor bug."""
    source = folder / "probe.py"
    source.write_text(text, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "sdls", "complete", str(source), "--line", str(line), "--col", str(col),
                          "--model", str(model), "--json"], capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise RuntimeError(f"sdls complete failed: {run.stderr[-2000:]}")
    answer = json.loads(run.stdout)
    return answer["text"], answer.get("reason", "")
