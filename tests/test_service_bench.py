"""`sdls bench service`: what the simulated editors type, and one short run against the worker and the service."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from sdls.service.bench_service import add_arguments, keystrokes, report, run_target, typing_lines

SOURCE = 'import os\n\n\n\n\n\ndef walk(root):\n    """Yield every file."""\n    # a comment long enough\n    for base, dirs, files in os.walk(root):\n        yield base\n'


def test_editors_retype_indented_code_lines_one_character_at_a_time():
    lines = SOURCE.split("\n")
    picked = typing_lines(SOURCE, 1)
    assert [lines[i].strip() for i in picked] == ["for base, dirs, files in os.walk(root):"]
    strokes = keystrokes(SOURCE, picked[0])
    code = lines[picked[0]].strip()
    assert len(strokes) == len(code)
    assert strokes[-1].text == SOURCE  # the line typed back in full
    first = strokes[0]
    assert first.text[first.offset - 1] == "f" and first.text[first.offset :].startswith("\n        yield")


@pytest.mark.slow
def test_a_short_run_against_the_worker_and_the_service_reports_every_figure():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--editors", "2", "--lines", "1", "--pause", "0.2", "--rate", "20"])
    files = [("a.py", SOURCE), ("b.py", SOURCE)]
    rows = [asyncio.run(run_target(name, args, files)) for name in ("worker", "service")]
    for row in rows:
        assert row["sent"] == 2 * len(keystrokes(SOURCE, typing_lines(SOURCE, 1)[0]))
        assert row["answered"] + row["cancelled"] + row["failed"] == row["sent"]
        assert row["failed"] == 0 and row["answered"] >= 2  # at least each line's last keystroke
        assert row["jobs_per_engine_call"] >= 1 and row["rss_mb_per_replica"][0] > 0
    table = report(rows, args)
    assert "local worker" in table and "sdls service" in table
