"""Hot reload: watch the model directory and swap in a new checkpoint once it validates completely.

Writing a checkpoint takes a while (several files, large tensors), so events are debounced; then the
whole directory is validated and loaded off the engine thread. Only a model that loads is handed to
the scheduler; a half-written or broken one is reported and the old model keeps serving.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)


class Debouncer:
    """Calls `action` once, `delay_s` after the last `poke()`."""

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


class _Poke(FileSystemEventHandler):
    def __init__(self, on_event: Callable[[str], None]):
        self.on_event = on_event

    def on_any_event(self, event) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return   # reads (our own loads included) are not changes
        self.on_event(str(event.src_path))


class ModelReloader:
    """Watches `model_dir`; after changes settle, validates and loads, then calls `install(engine)`."""

    def __init__(self, model_dir: str | Path, load: Callable[[Path], Any], install: Callable[[Any], None],
                 validate: Callable[[Path], list[str]], delay_s: float = 1.0):
        self.model_dir = Path(model_dir)
        self.load, self.install, self.validate = load, install, validate
        self.reloads = 0
        self.rejections: list[str] = []
        self._debouncer = Debouncer(delay_s, self._reload)
        self._observer = Observer()

    def start(self) -> None:
        self._observer.schedule(_Poke(lambda _path: self._debouncer.poke()), str(self.model_dir), recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._debouncer.cancel()
        self._observer.stop()

    def _reload(self) -> None:
        try:
            problems = self.validate(self.model_dir)   # [] = loadable; checked before touching weights
            if problems:
                raise ValueError("; ".join(problems))
            engine = self.load(self.model_dir)
        except Exception as exc:
            message = f"new checkpoint in {self.model_dir} rejected, still serving the previous model: {exc}"
            log.warning(message)
            self.rejections.append(message)
            return
        self.install(engine)
        self.reloads += 1
        log.info("reloaded the model from %s", self.model_dir)
