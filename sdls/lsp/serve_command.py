"""`sdls serve`: run the language server on stdio (default) or on 127.0.0.1:PORT.

Command-line options are defaults; the editor's initializationOptions override them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sdls_model.precision import add_dtype_argument

from .settings import Settings, settings_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT instead of stdio")
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...")
    add_dtype_argument(parser, default=None)
    parser.add_argument(
        "--in-process", action="store_true", help="run the model inside the server instead of a shared worker process"
    )
    parser.add_argument("--worker-socket", default=None, help="connect to (or start) the worker on this socket")
    parser.add_argument("--log-file", default=None, help="write the server log here (stdio carries LSP)")
    parser.add_argument("-v", "--verbose", action="store_true")


def defaults_from_args(args: argparse.Namespace) -> Settings:
    data: dict = {"model": {}, "worker": {}}
    if args.model:
        data["model"]["path"] = args.model
    if args.device:
        data["model"]["device"] = args.device
    if args.dtype:
        data["model"]["dtype"] = args.dtype
    if args.in_process:
        data["worker"]["inProcess"] = True
    if args.worker_socket:
        data["worker"]["socket"] = args.worker_socket
    settings, warnings = settings_from(data)
    assert not warnings, warnings
    return settings


def server_command(model_dir: str | None = None, *extra: str) -> list[str]:
    """The argv that starts `sdls serve` on stdio with this interpreter (for clients and tests)."""
    cmd = [sys.executable, "-m", "sdls", "serve"]
    if model_dir:
        cmd += ["--model", str(model_dir)]
    return cmd + list(extra)


def run(args: argparse.Namespace) -> int:
    where = {"filename": args.log_file} if args.log_file else {"stream": sys.stderr}
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s sdls-serve %(levelname)s %(name)s: %(message)s",
        **where,
    )
    if not args.verbose:
        # pygls logs every message it sends at INFO (whole documents included): that floods the
        # editor's log, and a client that does not drain stderr would block the server on it.
        logging.getLogger("pygls").setLevel(logging.WARNING)
    from .language_server import create_server

    server = create_server(defaults_from_args(args))
    if args.tcp is not None:
        server.start_tcp("127.0.0.1", args.tcp)  # loopback only: the socket serves the user's code
    else:
        server.start_io()
    return 0
