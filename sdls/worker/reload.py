"""Hot reload: watch the model directory and swap in a new checkpoint once it validates completely.

Writing a checkpoint takes a while (several files, large tensors), so events are debounced; then the
whole directory is validated and loaded off the engine thread. Only a model that loads is handed to
the scheduler; a half-written or broken one is reported and the old model keeps serving.

Both kinds of update are seen: files rewritten inside the directory, and the directory replaced by
a rename (how `save_checkpoint` publishes atomically). The second needs a watch on the parent, and
the watch on the directory itself is re-armed after each change because the inode may be new.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from sdls.watching import Debouncer, changed_paths

log = logging.getLogger(__name__)


class _Filter(FileSystemEventHandler):
    """Pokes when an event touches `target` (the directory itself or anything in it)."""

    def __init__(self, target: Path, poke: Callable[[], None]):
        self.target = str(target)
        self.poke = poke

    def on_any_event(self, event) -> None:
        if any(path == self.target or path.startswith(self.target + os.sep) for path in changed_paths(event)):
            self.poke()


class ModelReloader:
    """Watches `model_dir`; after changes settle, validates and loads, then calls `install(engine)`."""

    def __init__(
        self,
        model_dir: str | Path,
        load: Callable[[Path], Any],
        install: Callable[[Any], None],
        validate: Callable[[Path], list[str]],
        delay_s: float = 1.0,
    ):
        self.model_dir = Path(model_dir).resolve()
        self.load, self.install, self.validate = load, install, validate
        self.reloads = 0
        self.rejections: list[str] = []
        self._debouncer = Debouncer(delay_s, self._reload)
        self._observer = Observer()
        self._handler = _Filter(self.model_dir, self._debouncer.poke)
        self._inner = None

    def start(self) -> None:
        self._observer.schedule(self._handler, str(self.model_dir.parent), recursive=False)
        self._arm_inner()
        self._observer.daemon = True
        self._observer.start()

    def _arm_inner(self) -> None:
        if self._inner is not None:
            try:
                self._observer.unschedule(self._inner)
            except (KeyError, ValueError):
                pass
            self._inner = None
        if self.model_dir.is_dir():
            try:
                self._inner = self._observer.schedule(self._handler, str(self.model_dir), recursive=False)
            except OSError:  # replaced again while we looked: the parent watch will poke once more
                self._inner = None

    def stop(self) -> None:
        self._debouncer.cancel()
        self._observer.stop()

    def _reload(self) -> None:
        self._arm_inner()
        try:
            problems = self.validate(self.model_dir)  # [] = loadable; checked before touching weights
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
