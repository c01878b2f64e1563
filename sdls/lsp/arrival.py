"""The document version a request was made against: the one open when the request arrived.

pygls starts an async handler as a task, which runs only after the reader has handled the messages
that came in the same read: a `didChange` sent after a request can be applied before the request's
handler reads the document. A request carries no version (LSP's TextDocumentIdentifier has none),
so the version at arrival is recorded in a context variable the handler's task inherits, and a
handler that finds the document moved on answers ContentModified instead of serving the new text at
a position meant for the old one.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from .model_call import ensure_current

_ARRIVAL: ContextVar[tuple[str, int] | None] = ContextVar("sdls_request_arrival", default=None)


def _uri(params: Any) -> str | None:
    uri = getattr(getattr(params, "text_document", None), "uri", None)
    return uri if isinstance(uri, str) else None


def note_arrival(docs: Any, params: Any) -> None:
    """Called synchronously as a request is dispatched: remember its document's version (or none)."""
    uri = _uri(params)
    version = docs.version_of(uri) if docs is not None and uri is not None else None
    _ARRIVAL.set((uri, version) if uri is not None and version is not None else None)


def ensure_as_arrived(docs: Any, params: Any) -> None:
    """Raise DocumentChanged if the request's document changed (or closed) since the request arrived."""
    arrived = _ARRIVAL.get()
    if arrived is None or arrived[0] != _uri(params) or docs is None:
        return
    ensure_current(docs.find(arrived[0]), arrived[1])
