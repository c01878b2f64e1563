"""The VS Code extension in a real VS Code workbench (code-server in Debian's chromium, Playwright),
via editors/vscode/e2e/e2e.mjs: install the .vsix, open a Python file, type, see the ghost text,
accept it with Tab, find it in the editor; toggle and restart from the command palette; apply a
code action from the lightbulb menu; rename a parameter and take the next edit from its code lens
with Tab, Tab.

Twice: against the scripted server (tests/editor_scripted_server.py, exact text known), and against
the real `sdls serve` with the shipped model (or SDLS_EDITOR_TEST_MODEL), typing in a real file at a
place where that model offers a completion (found first through the server's own core call); it
skips with the model's reasons only when the model offers nothing anywhere it was asked.
SDLS_UPDATE_SCREENSHOTS=1 copies the screenshot to editors/vscode/screenshots/ghost-text.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from editor_models import find_offer, trained_model

REPO = Path(__file__).resolve().parents[1]
EXTENSION = REPO / "editors" / "vscode"
E2E = EXTENSION / "e2e"
NODE24 = E2E / "node_modules" / "node" / "bin" / "node"
SCREENSHOT = REPO / "editors" / "vscode" / "screenshots" / "ghost-text.png"


def missing() -> str | None:
    if not (E2E / "node_modules" / ".bin" / "code-server").exists() or not NODE24.exists():
        return "code-server is not installed: run editors/vscode/e2e/run.sh once (npm ci there)"
    if not Path("/usr/bin/chromium").exists():
        return "no /usr/bin/chromium (apt-get install chromium)"
    if not (EXTENSION / "node_modules" / ".bin" / "vsce").exists():
        return "the extension's npm packages are not installed: run editors/vscode/ci.sh"
    return None


@pytest.mark.slow
@pytest.mark.skipif(missing() is not None, reason=missing() or "")
@pytest.mark.parametrize("server", ["scripted", "model"])
def test_vscode_workbench_shows_and_accepts_ghost_text(tmp_path, server):
    model = trained_model() if server == "model" else None
    if server == "model" and model is None:
        pytest.skip(
            "no trained model: model/sdls_model/default (the shipped model) is missing and SDLS_EDITOR_TEST_MODEL is unset"
        )
    # Package the extension as it is now (tsc + vsce, a few seconds), so the test never runs a stale .vsix.
    subprocess.run(["npm", "run", "--silent", "package"], cwd=EXTENSION, check=True, capture_output=True, timeout=300)
    args = ["--screenshot", str(tmp_path / "ghost-text.png")]
    if model is not None:
        offer, why = find_offer(model)
        if offer is None:
            pytest.skip(why[:600])
        (tmp_path / "source.py").write_text(offer.text, encoding="utf-8")
        # The model's code actions are checked in Neovim; here a weak model may propose no change.
        # 45 s: up to 15 s per typed piece for an answer (the first one loads the model).
        args += [
            "--python",
            sys.executable,
            "--model",
            str(model),
            "--no-action",
            "--timeout",
            "45",
            "--file",
            str(tmp_path / "source.py"),
            "--line",
            str(offer.row),
            "--typed",
            offer.typed,
        ]
    else:
        # The extension's configured "python" runs the scripted server instead of `sdls serve`.
        stand_in = tmp_path / "python"
        stand_in.write_text(f"#!/bin/sh\nexec {sys.executable} {REPO / 'tests' / 'editor_scripted_server.py'}\n")
        stand_in.chmod(0o755)
        args += ["--python", str(stand_in), "--model", str(tmp_path)]
    args.append("--next-edit")  # rename a parameter, then the next-edit code lens, Tab, Tab
    env = dict(os.environ, PATH=f"{NODE24.parent}:{os.environ['PATH']}")
    run = subprocess.run(
        [str(NODE24), str(E2E / "e2e.mjs"), *args], capture_output=True, text=True, timeout=420, env=env, cwd=E2E
    )
    if run.returncode == 77:
        pytest.skip(run.stdout.strip())
    # With the model, the offer was found first: no ghost text there is an editor bug, not a model limit.
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS" in run.stdout
    if model is None:
        # The scripted server replaces the typed "ret" with "return a + b": exact text known.
        assert 'ghost text: "urn a + b"' in run.stdout, run.stdout
        assert (
            'accepted: the file now reads "def add(a, b):\\n    return a + b\\n\\n\\ndef sub(a, b):\\n    return a + b\\n"'
            in run.stdout
        ), run.stdout
        # ...and its "Fill in stub" code action, resolved on choice, replaces `pass` with `return a + b`.
        assert 'code action applied: the file now reads "def add(a, b):\\n    return a + b\\n"' in run.stdout, (
            run.stdout
        )
        # ...and its next edit after the rename: the other use of `width` becomes `size`.
        renamed = "def area(size, height):\\n    w = size * 2\\n    return w * height\\n"
        assert f'next edit applied: the file now reads "{renamed}"' in run.stdout, run.stdout
    assert (tmp_path / "ghost-text.png").stat().st_size > 10_000
    if os.environ.get("SDLS_UPDATE_SCREENSHOTS") == "1":  # the model's run goes last: its picture wins
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "ghost-text.png", SCREENSHOT)
