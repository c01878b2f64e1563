"""A language server in this process, without a transport: tests call the handlers of
sdls/lsp/handlers.py on it directly, with a ScriptedBackend (or any fake) as the model."""

from __future__ import annotations

from lsprotocol import types as lsp

from sdls.lsp import handlers
from sdls.lsp.language_server import SdlsServer, create_server

PY = "python"


def core_server(backend=None, roots=None, settings=None) -> SdlsServer:
    """What `initialize` sets up (settings, roots), minus the protocol's own bookkeeping."""
    server = create_server()
    server.protocol._send_data = lambda data: None  # no transport: notifications go nowhere
    server.protocol.client_capabilities = lsp.ClientCapabilities()  # what initialize records
    server.apply_settings(settings)
    server.set_roots(list(roots or []))
    if backend is not None:
        use_backend(server, backend)
    return server


def use_backend(server: SdlsServer, backend) -> None:
    """Serve model calls from `backend` under the current settings (get_backend keeps it)."""
    server.backend, server._backend_key = backend, server.backend_key()


def open_doc(server: SdlsServer, uri: str, text: str, version: int = 1, language: str = PY) -> None:
    handlers.did_open(server, lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, language, version, text)))


def change_doc(server: SdlsServer, uri: str, version: int, rng: tuple[int, int, int, int] | None, text: str) -> None:
    change: lsp.TextDocumentContentChangeEvent
    if rng is None:
        change = lsp.TextDocumentContentChangeWholeDocument(text=text)
    else:
        start, end = lsp.Position(rng[0], rng[1]), lsp.Position(rng[2], rng[3])
        change = lsp.TextDocumentContentChangePartial(range=lsp.Range(start, end), text=text)
    handlers.did_change(
        server, lsp.DidChangeTextDocumentParams(lsp.VersionedTextDocumentIdentifier(version=version, uri=uri), [change])
    )


def close_doc(server: SdlsServer, uri: str) -> None:
    handlers.did_close(server, lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri)))


async def code_actions(server: SdlsServer, uri: str, start: tuple[int, int], end: tuple[int, int]):
    rng = lsp.Range(lsp.Position(*start), lsp.Position(*end))
    params = lsp.CodeActionParams(lsp.TextDocumentIdentifier(uri), rng, lsp.CodeActionContext(diagnostics=[]))
    return await handlers.code_action(server, params)
