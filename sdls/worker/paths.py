"""Where a worker's socket lives: one per (model directory, device, context size), in a directory only
this user can enter.

Servers that ask for the same model on the same device find the same socket, so several editor
windows share one warm model.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"sdls-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    # Refuse a directory someone else planted (or made group/world-accessible): the socket
    # it would hold hands out model access and reads the user's code.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory owned by this user")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def worker_key(model_dir: str | None, device: str, max_context: int = 1024, dtype: str = "auto") -> str:
    where = str(Path(model_dir).resolve()) if model_dir else "<default>"
    return hashlib.sha1(f"{where}|{device}|{max_context}|{dtype}".encode()).hexdigest()[:12]


def default_socket_path(model_dir: str | None, device: str, max_context: int = 1024, dtype: str = "auto") -> Path:
    return runtime_dir() / f"worker-{worker_key(model_dir, device, max_context, dtype)}.sock"


def log_path_for(socket_path: str | Path) -> Path:
    return Path(str(socket_path) + ".log")
