"""Waiting in tests for something to happen, without making time part of what is tested.

Every wait here is for a condition (an event set, a state reached, a line logged). SAFETY_S only
turns a hang into a clear failure: it is far above what any of these waits takes on a loaded
2-core machine, and no test asserts how long something took (benchmarks print that).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

SAFETY_S = 60.0


def eventually(predicate: Callable[[], Any], what: str, timeout: float = SAFETY_S, interval: float = 0.01) -> Any:
    """Poll `predicate` until it returns something truthy and return that; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s (the safety limit) waiting for {what}")
        time.sleep(interval)
    return value


async def eventually_async(
    predicate: Callable[[], Any], what: str, timeout: float = SAFETY_S, interval: float = 0.01
) -> Any:
    """`eventually` inside an event loop: `predicate` may be a coroutine function (a request, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s (the safety limit) waiting for {what}")
        await asyncio.sleep(interval)
