"""`sdls serve`: run the language server on stdio (default) or on 127.0.0.1:PORT.

Command-line options are defaults; the editor's initializationOptions override them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sdls_model.precision import add_dtype_argument

from .settings import Settings, settings_from

TOKEN_ENV = "SDLS_TCP_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tcp", type=int, metavar="PORT", help="serve one client holding the token on HOST:PORT instead of stdio"
    )
    parser.add_argument("--host", default="127.0.0.1", help="with --tcp: the address to bind (default loopback only)")
    parser.add_argument(
        "--token-file",
        default=None,
        help=f"with --tcp: the client's token (created 0600 if missing; default {{runtime dir}}/tcp-PORT.token; "
        f"${TOKEN_ENV} wins)",
    )
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
        token, where = tcp_token(args)

        def ready(port: int) -> None:  # the line editors and tests wait for (the port may have been 0)
            print(f"sdls serve: listening on {args.host}:{port}; token {where}", file=sys.stderr, flush=True)

        server.start_tcp_for_one(args.host, args.tcp, token, ready)
    else:
        server.start_io()
    return 0


def tcp_token(args: argparse.Namespace) -> tuple[str, str]:
    """The token a TCP client must send, and where it comes from (said on stderr, never the token)."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV], f"from ${TOKEN_ENV}"
    from sdls.token_file import load_or_create_token
    from sdls.worker.paths import runtime_dir

    path = Path(args.token_file) if args.token_file else runtime_dir() / f"tcp-{args.tcp}.token"
    return load_or_create_token(path), f"in {path}"
