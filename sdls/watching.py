"""File watching shared by the workspace index (sdls.lsp) and the model reloader (sdls.worker): a
debouncer and the paths a watchdog event changed. No watchdog import here: callers load it when they watch."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any


class Debouncer:
    """Calls `action` once, `delay_s` after the last `poke()` (on a timer thread)."""

    def __init__(self, delay_s: float, action: Callable[[], None]):
        self.delay_s = delay_s
        self.action = action
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay_s, self.action)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


def changed_paths(event: Any) -> list[str]:
    """The paths a watchdog event changed (source and destination of a move); none for reads."""
    if event.event_type in ("opened", "closed_no_write"):
        return []  # reads (our own loads included) are not changes
    return [os.fsdecode(raw) for raw in (event.src_path, getattr(event, "dest_path", "")) if raw]
