"""Where a worker's socket lives: one per (model directory, device, context size), in a directory only
this user can enter.

Servers that ask for the same model on the same device find the same socket, so several editor
windows share one warm model.

A socket path may also come from a setting (`worker.socket`, which a repository's own editor settings
can set): sdls never deletes, replaces or truncates what such a path names. Something there that is
not a socket (a file, a directory, a symbolic link) is refused with a clear error; a socket is only
removed as stale when this user owns it and its directory (private: 0700), where only sdls puts
one; and the worker's log and lock files live in the runtime directory, never beside the path.
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
    key = f"{where}|{device}|{max_context}|{dtype}"
    weights = os.environ.get("SDLS_CPU_WEIGHTS", "auto").strip().lower()
    if weights not in ("", "auto"):  # a worker storing its matrices otherwise is another worker
        key += f"|weights={weights}"
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def default_socket_path(model_dir: str | None, device: str, max_context: int = 1024, dtype: str = "auto") -> Path:
    return runtime_dir() / f"worker-{worker_key(model_dir, device, max_context, dtype)}.sock"


class UnsafeSocketPath(ValueError):
    """A socket path naming something sdls did not create (it would have to be replaced)."""


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file"))


def check_socket_path(path: str | Path) -> None:
    """Refuse a socket path that names anything but a socket (nothing there is fine)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(info.st_mode):
        return
    kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a socket")
    raise UnsafeSocketPath(
        f"worker.socket {path} is {kind}; sdls never replaces it: set worker.socket to a path that does not exist"
    )


def removable_stale_socket(path: str | Path) -> bool:
    """Whether a dead socket at `path` may be removed: a socket this user owns, in a directory only
    this user can enter (where sdls creates its sockets). Anything else stays where it is."""
    try:
        info, folder = os.lstat(path), os.lstat(Path(path).parent)
    except FileNotFoundError:
        return False
    uid = os.getuid()
    return (
        stat.S_ISSOCK(info.st_mode)
        and info.st_uid == uid
        and stat.S_ISDIR(folder.st_mode)
        and folder.st_uid == uid
        and not folder.st_mode & 0o077
    )


def _sidecar(socket_path: str | Path, suffix: str) -> Path:
    key = hashlib.sha1(os.path.abspath(socket_path).encode()).hexdigest()[:12]
    return runtime_dir() / f"socket-{key}.{suffix}"


def log_path_for(socket_path: str | Path) -> Path:
    """The worker's log for a socket: in the runtime directory (a file beside a path from a setting
    could be the user's own)."""
    return _sidecar(socket_path, "log")


def lock_path_for(socket_path: str | Path) -> Path:
    return _sidecar(socket_path, "lock")
