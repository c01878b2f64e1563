"""Who may use the service: a bearer token, generated at first start into a file only this user can
read, and required by default unless the service listens on loopback only.

llama.vim always sends `Authorization: Bearer ` (an empty token) and llama.vscode none: on
loopback with the token not required both work as they are; a configured token is then still
accepted but not demanded.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
from pathlib import Path

from .errors import ApiError

TOKEN_ENV = "SDLS_SERVICE_TOKEN"  # a token given by the environment (a Kubernetes Secret) wins over the file


def default_token_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "sdls" / "service-token"


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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bearer(authorization: str | None, token: str) -> None:
    """Raise 401 unless the header is `Bearer <token>` (compared in constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "this service needs `Authorization: Bearer <token>` (the token is in its token file)")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "invalid API key")
