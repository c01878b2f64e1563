"""`sdls serve` itself (its argument parsing, transport, protocol and handlers) with the model
replaced by lsp_fakes.ScriptedBackend, for tests that drive the real server process fast and
without a checkpoint (the fuzzer). Run as `python tests/scripted_sdls_serve.py [serve args]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lsp_fakes import ScriptedBackend

from sdls.lsp import language_server, serve_command
from sdls_model.jobs import TextEdit


async def scripted_backend(_settings) -> ScriptedBackend:
    return ScriptedBackend(
        answer=lambda job: "value + 1",
        edits=lambda job: [TextEdit(job.start, job.end, job.text[job.start : job.end].upper())],
    )


if __name__ == "__main__":
    language_server.open_backend = scripted_backend
    parser = argparse.ArgumentParser()
    serve_command.add_arguments(parser)
    sys.exit(serve_command.run(parser.parse_args(sys.argv[1:])))
