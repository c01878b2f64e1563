"""Start `sdls serve` as a subprocess and drive it with pytest-lsp's LanguageClient (shared by the e2e tests)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import uuid
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig
from waiting import SAFETY_S

from sdls.lsp.serve_command import server_command

PY = "python"


def short_tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="sdls-t", dir="/tmp"))  # Unix socket paths must stay < 108 bytes


@asynccontextmanager
async def sdls_session(
    model_dir: str | Path | None,
    options: dict | None = None,
    root: Path | None = None,
    extra_args: tuple[str, ...] = (),
    socket_dir: Path | None = None,
    configuration: dict | None = None,
    pull: bool | None = None,
):
    """A started, initialized server with its own worker socket (or the one in `socket_dir`, shared);
    a worker it owns is stopped afterwards. `configuration` is the client's "sdls" section, which it
    answers workspace/configuration with (`client.set_configuration` changes it); `pull` says whether
    the client advertises that it supports workspace/configuration (default: when it has one)."""
    owns_worker = socket_dir is None
    sock_dir = socket_dir or short_tmp()
    init = {"worker": {"socket": str(sock_dir / "w.sock"), "idleExitS": 60}, **(options or {})}
    if "worker" in (options or {}):
        init["worker"] = {"socket": str(sock_dir / "w.sock"), "idleExitS": 60, **options["worker"]}
    cmd = server_command(str(model_dir) if model_dir else None, *extra_args)
    client = await ClientServerConfig(server_command=cmd).start()
    count_responses(client)
    client.applied_edits = []

    @client.feature(lsp.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: lsp.ApplyWorkspaceEditParams):
        client.applied_edits.append(params)
        return lsp.ApplyWorkspaceEditResult(applied=True)

    if configuration is not None:
        client.set_configuration(configuration, section="sdls")
    pull = configuration is not None if pull is None else pull
    caps = lsp.ClientCapabilities(
        window=lsp.WindowClientCapabilities(work_done_progress=True),
        workspace=lsp.WorkspaceClientCapabilities(configuration=pull, workspace_folders=True),
    )
    client.init_result = await client.initialize_session(
        lsp.InitializeParams(capabilities=caps, initialization_options=init, root_uri=root.as_uri() if root else None)
    )
    try:
        yield client
    finally:
        pid = await worker_pid(client) if owns_worker else None
        try:
            await asyncio.wait_for(client.shutdown_session(), 10)
        finally:
            await client.stop()
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            if owns_worker:
                shutil.rmtree(sock_dir, ignore_errors=True)


def count_responses(client) -> None:
    """Record the id of every request the client sends (`client.sent_ids`) and how many responses
    each id gets (`client.responses`), through pygls' public send_request / handle_message."""
    protocol = client.protocol
    client.sent_ids, client.responses = [], Counter()
    send_request, handle_message = protocol.send_request, protocol.handle_message

    def counting_send(method, params=None, callback=None, msg_id=None):
        msg_id = str(uuid.uuid4()) if msg_id is None else msg_id  # as pygls names them
        client.sent_ids.append(msg_id)
        return send_request(method, params, callback, msg_id)

    def counting_handle(message):
        if getattr(message, "method", None) is None and getattr(message, "id", None) is not None:
            client.responses[message.id] += 1
        return handle_message(message)

    protocol.send_request, protocol.handle_message = counting_send, counting_handle


async def stats(client) -> dict:
    return await client.protocol.send_request_async("sdls/stats", None)


async def worker_pid(client) -> int | None:
    try:
        info = (await asyncio.wait_for(stats(client), 5)).worker_info
    except Exception:
        return None
    return getattr(info, "pid", None) if info else None


def open_doc(client, uri: str, text: str, language: str = PY, version: int = 1) -> None:
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, language, version, text)))


def change_doc(client, uri: str, version: int, line: int, col: int, text: str) -> None:
    pos = lsp.Position(line, col)
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            [lsp.TextDocumentContentChangePartial(range=lsp.Range(pos, pos), text=text)],
        )
    )


def inline_params(uri: str, line: int, col: int, invoked: bool = True) -> lsp.InlineCompletionParams:
    kind = lsp.InlineCompletionTriggerKind.Invoked if invoked else lsp.InlineCompletionTriggerKind.Automatic
    return lsp.InlineCompletionParams(
        context=lsp.InlineCompletionContext(trigger_kind=kind),
        text_document=lsp.TextDocumentIdentifier(uri),
        position=lsp.Position(line, col),
    )


async def inline(client, uri: str, line: int, col: int, invoked: bool = True):
    return await client.text_document_inline_completion_async(inline_params(uri, line, col, invoked))


def send_inline(client, uri: str, line: int, col: int, msg_id: str | None = None) -> asyncio.Future:
    """Write an inline request now (before anything sent after this call) and return its answer's
    future; `inline()` only writes once the event loop runs it, so it cannot order messages."""
    params = inline_params(uri, line, col)
    return asyncio.wrap_future(client.protocol.send_request(lsp.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id))


async def wait_for_diagnostics(client, uri: str) -> list:
    """The diagnostics published for `uri` (waits for the first publication)."""
    while uri not in client.diagnostics:
        await asyncio.wait_for(client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), SAFETY_S)
    return client.diagnostics[uri]


async def wait_for_message(client) -> lsp.ShowMessageParams:
    """The first window/showMessage the server sent (waits for it)."""
    while not client.messages:
        await asyncio.wait_for(client.wait_for_notification(lsp.WINDOW_SHOW_MESSAGE), SAFETY_S)
    return client.messages[0]


async def configure(client, settings: dict) -> None:
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=settings))
    await stats(client)  # a request round trip: the notification has been handled before it
