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
from pathlib import Path

from sdls.token_file import load_or_create_token  # noqa: F401 (the service's token file, shared with serve --tcp)

from .errors import ApiError

TOKEN_ENV = "SDLS_SERVICE_TOKEN"  # a token given by the environment (a Kubernetes Secret) wins over the file


def default_token_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "sdls" / "service-token"


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
