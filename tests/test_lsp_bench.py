"""`sdls bench lsp`: line picking, percentiles, and one short replay through the real server."""

from __future__ import annotations

import argparse
import asyncio

import pytest
from fixtures_checkpoints import write_sdls

from sdls.lsp.bench_lsp import add_arguments, percentile, pick_lines, report, run_bench

SOURCE = '''import os


def walk(root):
    """Yield every file.

    This docstring line is long enough to be typed but must not be picked.
    """
    for base, dirs, files in os.walk(root):
        # a comment that is also long enough to be picked by accident
        for name in files:
            yield os.path.join(base, name)
'''


def test_pick_lines_takes_statement_starts_only():
    lines = SOURCE.split("\n")
    picked = [lines[i].strip() for i in pick_lines(SOURCE, 3)]
    assert picked and all(not p.startswith(("This", "#", '"')) for p in picked)
    assert set(picked) <= {
        "for base, dirs, files in os.walk(root):",
        "for name in files:",
        "yield os.path.join(base, name)",
    }


def test_percentile_nearest_rank():
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0 and percentile([1.0, 2.0], 95) == 2.0
    assert percentile([], 50) != percentile([], 50)  # NaN: no data is not zero latency


@pytest.mark.slow
def test_short_replay_accounts_for_every_request(tmp_path):
    model = tmp_path / "tiny"
    write_sdls(model)
    source = tmp_path / "walk.py"
    source.write_text(SOURCE)
    parser = argparse.ArgumentParser()
    add_arguments(parser)  # the command's own defaults, so a new option cannot be missed here
    args = parser.parse_args(
        [
            "--model",
            str(model),
            "--files",
            str(source),
            "--lines",
            "1",
            "--rate",
            "40",
            "--pause",
            "0.5",
            "--in-process",
        ]
    )
    fig = asyncio.run(run_bench(args))
    r = fig["requests"]
    assert r["sent"] == fig["keystrokes"] > 0
    assert r["answered"] + r["cancelled"] + r["stale"] + r["failed"] == r["sent"] and r["failed"] == 0
    assert fig["model_steps"]["forwards"] > 0 and fig["memory_mb"]["server"] > 0
    text = report(fig)
    assert "p50" in text and "cancelled" in text and "memory" in text


def test_a_long_session_through_the_driver_does_not_block_on_server_logs():
    import io

    from sdls.lsp.driver import LspDriver

    async def session():
        log = io.StringIO()
        driver = await LspDriver.start(None, {"diagnostics": {"enabled": True}}, stderr_to=log)
        try:
            text = "x = (\n" * 2000  # 12 KB per open: well over a pipe buffer in total
            for i in range(20):
                await driver.open(f"file:///logs/{i}.py", text)
                await asyncio.wait_for(driver.stats(), 10)
        finally:
            await driver.stop()
        return log.getvalue()

    log = asyncio.run(session())
    assert "Sending data" not in log  # messages are not logged at the default level
