"""Which backend runs the model for the server: a shared worker process (default) or the engine in-process."""

from __future__ import annotations

import asyncio

from sdls.worker.client import ModelUnavailable, WorkerClient
from sdls.worker.paths import default_socket_path

from .settings import Settings


def worker_args(settings: Settings) -> list[str]:
    """`sdls worker` arguments for the model these settings ask for."""
    args = [
        "--device",
        settings.model.device,
        "--dtype",
        settings.model.dtype,
        "--max-context",
        str(settings.model.max_context),
        "--idle-exit",
        str(settings.worker.idle_exit_s),
    ]
    if settings.model.path:
        args += ["--model", settings.model.path]
    return args


async def open_backend(settings: Settings):
    if settings.worker.in_process:
        from sdls.worker.inprocess import InProcessBackend

        try:
            return await asyncio.to_thread(
                InProcessBackend.from_dir,
                settings.model.path,
                settings.model.device,
                settings.model.max_context,
                settings.model.dtype,
            )
        except (OSError, ValueError) as exc:  # CheckpointError is a ValueError
            raise ModelUnavailable(str(exc)) from exc
    socket_path = settings.worker.socket or default_socket_path(
        settings.model.path, settings.model.device, settings.model.max_context, settings.model.dtype
    )
    return WorkerClient(
        socket_path,
        spawn_args=worker_args(settings) if settings.worker.spawn else None,
        start_timeout_s=settings.worker.start_timeout_s,
    )
