"""Running one job for an HTTP request: its blocks as they are committed, and cancellation when the
client goes away.

`job_events` submits a job to a backend (the scheduler the worker uses) and yields ("block", text so
far) for each committed block, then ("result", JobResult). Leaving the loop early (a client that
disconnected, a stop string, a deadline) cancels the job: it stops at its next denoising step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from starlette.requests import Request

T = TypeVar("T")


class ClientGone(Exception):
    """The HTTP client disconnected before its answer was ready."""


async def job_events(backend: Any, job: Any, lane: str) -> AsyncIterator[tuple[str, Any]]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_block(text: str) -> None:  # the engine thread, between two steps
        try:
            loop.call_soon_threadsafe(queue.put_nowait, ("block", text))
        except RuntimeError:  # the loop closed under a job being cancelled: nobody is listening
            pass

    job.on_block = on_block
    task = asyncio.ensure_future(backend.run(job, lane))
    # Scheduled after every block report (both go through call_soon_threadsafe on this loop): FIFO.
    task.add_done_callback(lambda done: queue.put_nowait(("done", done)))
    try:
        while True:
            kind, value = await queue.get()
            if kind == "block":
                yield kind, value
            else:
                yield "result", value.result()  # a WorkerError from the scheduler propagates
                return
    finally:
        if not task.done():
            task.cancel()  # the backend cancels the ticket: the engine stops at the next step
            with contextlib.suppress(BaseException):
                await task


async def until_disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body must have been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s value; if the client disconnects first, `work` is cancelled and ClientGone raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if task.cancelled():
        raise ClientGone()
    return task.result()
