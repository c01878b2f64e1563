"""`sdls worker`: the process that owns the warm model and serves jobs over a Unix socket."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from sdls_model.job_memory import DEFAULT_BUDGET_MB
from sdls_model.precision import add_dtype_argument

from .paths import UnsafeSocketPath, check_socket_path, default_socket_path
from .protocol import MAX_FRAME_BYTES

log = logging.getLogger("sdls.worker")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    add_dtype_argument(parser)
    parser.add_argument("--socket", default=None, help="Unix socket path (default: per user, model and device)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-context", type=int, default=1024)
    parser.add_argument("--max-frame", type=int, default=MAX_FRAME_BYTES, help="largest accepted message, bytes")
    parser.add_argument(
        "--idle-exit", type=float, default=0.0, help="exit after this many seconds without clients (0 = never)"
    )
    parser.add_argument(
        "--memory-budget-mb",
        type=float,
        default=DEFAULT_BUDGET_MB,
        help="refuse a job estimated to need more than this (its context, middle and block size on the model; 0 = no budget)",
    )
    parser.add_argument("--no-watch", action="store_true", help="do not hot-reload the model directory")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0 = half the cores, at least 1: leaves room for the editor and server)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")


def default_threads() -> int:
    """Half the cores: on a busy 2-core machine two torch threads ran a decode step 10x slower than one
    (they fight the server, the editor and each other), while a big machine still gets parallelism."""
    return max(1, (os.cpu_count() or 2) // 2)


def load_engine(model_dir: Path | None, device: str, max_batch: int, max_context: int, dtype: str = "auto"):
    from sdls_model.engine import Engine

    return Engine.from_dir(model_dir, device=device, dtype=dtype, max_batch=max_batch, max_context=max_context)


def _say(message: str) -> None:
    """One line on stderr: the server shows a worker's last "sdls worker:" line to the user."""
    print(f"sdls worker: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s sdls-worker %(levelname)s %(message)s",
    )
    from .socket_server import SocketInUse, WorkerServer, socket_alive

    model_dir = Path(args.model) if args.model else None
    socket_path = (
        Path(args.socket) if args.socket else default_socket_path(args.model, args.device, args.max_context, args.dtype)
    )
    if socket_alive(socket_path):  # checked before importing torch and loading a model we would not serve
        _say(f"a worker is already serving on {socket_path}")
        return 3
    try:
        check_socket_path(socket_path)
    except UnsafeSocketPath as exc:
        _say(str(exc))
        return 2
    if model_dir is not None and not model_dir.exists():  # the common mistake, reported without importing torch
        _say(f"cannot load the model: {model_dir}: no such checkpoint directory or GGUF file")
        return 2

    import torch

    from sdls_model.checkpoint import CheckpointError

    from .scheduler import Scheduler

    torch.set_num_threads(args.threads or default_threads())
    load = lambda d: load_engine(d, args.device, args.max_batch, args.max_context, args.dtype)
    try:
        engine = load(model_dir)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        _say("cannot load the model: " + " ".join(line.strip() for line in str(exc).splitlines() if line.strip()))
        return 2
    scheduler = Scheduler(engine, max_batch=args.max_batch)
    server = WorkerServer(
        scheduler,
        describe=lambda: scheduler.engine.describe(),
        socket_path=socket_path,
        max_frame=args.max_frame,
        idle_exit_s=args.idle_exit or None,
        memory_budget=int(args.memory_budget_mb * 1024 * 1024) if args.memory_budget_mb > 0 else None,
    )
    reloader = None if args.no_watch else _start_reloader(model_dir, scheduler, load)
    scheduler.start()
    try:
        asyncio.run(_serve(server, socket_path))
    except SocketInUse as exc:
        _say(str(exc))
        return 3
    except UnsafeSocketPath as exc:
        _say(str(exc))
        return 2
    finally:
        if reloader:
            reloader.stop()
        scheduler.stop()
    return 0


def _start_reloader(model_dir: Path | None, scheduler, load):
    """Hot reload from the model directory (the shipped model's when none was given), if there is one."""
    from sdls_model.checkpoint import default_model_dir, validate_checkpoint

    from .reload import ModelReloader

    watched = model_dir or Path(default_model_dir())
    if not watched.is_dir():
        return None
    reloader = ModelReloader(watched, validate=validate_checkpoint, install=scheduler.swap_engine, load=load)
    reloader.start()
    return reloader


async def _serve(server, socket_path: Path) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    await server.serve(ready=lambda: print(f"sdls worker ready on {socket_path}", file=sys.stderr, flush=True))
