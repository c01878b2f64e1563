"""`sdls service`: serve the model over HTTP (llama.cpp /infill, OpenAI-style completions, sdls jobs).

Binds 127.0.0.1 unless told otherwise. A bearer token is generated at first start into a 0600 file
(or taken from $SDLS_SERVICE_TOKEN); it is required whenever the service listens beyond loopback
(`--auth auto`, the default). `--ray` runs the same app as Ray Serve replicas instead (ray_app.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sdls_model.job_memory import DEFAULT_BUDGET_MB
from sdls_model.precision import add_dtype_argument

from .auth import TOKEN_ENV, default_token_path, is_loopback, load_or_create_token
from .limits import MAX_BODY_BYTES

log = logging.getLogger("sdls.service")
DEFAULT_PORT = 8012  # llama.vim's default endpoint is http://127.0.0.1:8012/infill
DEFAULT_NAME = "sdls"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--model",
        action="append",
        metavar="[NAME=]PATH",
        help="checkpoint to serve, repeatable; the first is the default (default: the shipped model)",
    )
    parser.add_argument("--device", default="cpu")
    add_dtype_argument(parser)
    parser.add_argument("--max-context", type=int, default=1024)
    parser.add_argument("--max-batch", type=int, default=8, help="jobs per engine call")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = half the cores)")
    parser.add_argument("--token-file", type=Path, default=None, help=f"default: {default_token_path()}")
    parser.add_argument(
        "--auth",
        choices=("auto", "required", "none"),
        default="auto",
        help="auto: the token is required unless the service binds loopback only",
    )
    parser.add_argument("--max-body", type=int, default=MAX_BODY_BYTES, help="largest request body, bytes")
    parser.add_argument("--max-in-flight", type=int, default=64, help="model requests at once; more get a 503")
    parser.add_argument(
        "--memory-budget-mb",
        type=float,
        default=DEFAULT_BUDGET_MB,
        help="refuse (400) a job estimated to need more than this (its context, middle and block size; 0 = no budget)",
    )
    ray = parser.add_argument_group("Ray Serve (pip install sdls[cluster])")
    ray.add_argument("--ray", action="store_true", help="run the engine as Ray Serve replicas")
    ray.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start one here)")
    ray.add_argument("--num-replicas", default="1", help="replicas, or MIN:MAX to autoscale between them")
    ray.add_argument("--gpus-per-replica", type=float, default=None, help="default: 1 on cuda, 0 on cpu")
    ray.add_argument("--cpus-per-replica", type=float, default=1.0)
    ray.add_argument("--max-models-per-replica", type=int, default=2, help="multiplexed checkpoints kept warm")
    parser.add_argument("-v", "--verbose", action="store_true")


def model_specs(entries: list[str] | None) -> list[tuple[str, str | None]]:
    """(name, path) per --model; a bare path is named after its folder; none: the shipped model."""
    if not entries:
        return [(DEFAULT_NAME, None)]
    specs = []
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep:
            name, path = Path(entry).name or entry, entry
        if not name or not path:
            raise SystemExit(f"sdls service: --model {entry!r}: expected PATH or NAME=PATH")
        specs.append((name, path))
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise SystemExit(f"sdls service: two models share a name: {names}")
    return specs


def auth_settings(args: argparse.Namespace) -> tuple[str, bool, str]:
    """(token, whether it is required, where it came from)."""
    if os.environ.get(TOKEN_ENV):
        token, where = os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    else:
        path = args.token_file or default_token_path()
        token, where = load_or_create_token(path), str(path)
    required = args.auth == "required" or (args.auth == "auto" and not is_loopback(args.host))
    return token, required, where


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s sdls-service %(levelname)s %(message)s",
    )
    try:
        token, required, where = auth_settings(args)
    except (OSError, ValueError) as exc:
        print(f"sdls service: {exc}", file=sys.stderr)
        return 2
    if not required and not is_loopback(args.host):
        log.warning("--auth none on %s: anyone who can reach this port can read and use the model", args.host)
    specs = model_specs(args.model)
    if args.ray:
        from .ray_app import run_on_ray

        return run_on_ray(args, specs, token, required)
    return _run_local(args, specs, token, required, where)


def _run_local(args, specs, token: str, required: bool, where: str) -> int:
    import torch
    import uvicorn

    from sdls.worker.worker_command import default_threads
    from sdls_model.checkpoint import CheckpointError

    from .app import ServiceConfig, build_app
    from .models import LoadedModels
    from .served_model import ServedModel

    torch.set_num_threads(args.threads or default_threads())
    try:
        served = [
            ServedModel.load(
                name,
                path,
                args.device,
                args.dtype,
                args.max_context,
                args.max_batch,
                budget_bytes(args.memory_budget_mb),
            )
            for name, path in specs
        ]
    except (CheckpointError, OSError, ValueError) as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"sdls service: cannot load the model: {reason}", file=sys.stderr)
        return 2
    models = LoadedModels(served)
    config = ServiceConfig(token, required, args.max_body, args.max_in_flight)
    app = build_app(models, config)
    print(
        f"sdls service on http://{args.host}:{args.port} serving {', '.join(models.names())}; "
        f"token {'required' if required else 'accepted, not required'} ({where})",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", lifespan="off", access_log=False)
    )
    try:
        server.run()
    finally:
        models.close()
    return 0


def budget_bytes(megabytes: float) -> int | None:
    """--memory-budget-mb as bytes; 0 (or less) means no budget."""
    return int(megabytes * 1024 * 1024) if megabytes > 0 else None
