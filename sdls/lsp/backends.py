"""Which backend runs the model for the server: a shared worker process (default), the engine
in-process, or a remote `sdls service` (model.url)."""

from __future__ import annotations

import asyncio
from pathlib import Path

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


def service_backend(settings: Settings):
    """A client of the `sdls service` at model.url (imports httpx, never torch)."""
    from sdls.service.client import ServiceClient

    m = settings.model
    token = m.token
    if not token and m.token_file:
        try:
            token = Path(m.token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ModelUnavailable(f"model.tokenFile: cannot read {m.token_file}: {exc.strerror}") from exc
    try:
        return ServiceClient(m.url, token or None, m.id, timeout_s=settings.worker.timeout_s)
    except ValueError as exc:
        raise ModelUnavailable(str(exc)) from exc


async def open_backend(settings: Settings):
    if settings.model.url:
        return service_backend(settings)
    if settings.worker.in_process:
        from sdls.worker.inprocess import InProcessBackend

        try:
            return await asyncio.to_thread(
                InProcessBackend.from_dir,
                settings.model.path,
                settings.model.device,
                settings.model.max_context,
                settings.model.dtype,
                settings.worker.timeout_s,
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
        timeout_s=settings.worker.timeout_s,
    )
