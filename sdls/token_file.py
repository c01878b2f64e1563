"""A secret token kept in a file only this user can read: `sdls service` (bearer token) and `sdls serve
--tcp` (initializationOptions.tcpToken) both use one."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


def load_or_create_token(path: Path) -> str:
    """The token in `path`, creating it (0600, in a 0700 folder) on first start. A token file that other
    users could read is refused: anyone who has the token has the service and sees the code sent to it."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another service created it meanwhile: use theirs
            return load_or_create_token(path)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a regular file owned by this user; refusing it as the token file")
    if info.st_mode & 0o077:
        raise PermissionError(f"{path} is readable by other users; run `chmod 600 {path}` (or delete it for a new one)")
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise ValueError(f"{path} holds no usable token (at least 16 characters); delete it to generate one")
    return token
