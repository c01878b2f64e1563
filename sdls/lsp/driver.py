"""Drive `sdls serve` as an editor would: a subprocess on stdio and pygls' LanguageClient.

Used by `sdls bench lsp` and `sdls demo`. Example:

    driver = await LspDriver.start(model_dir="model/sdls_model/default")
    await driver.open("file:///tmp/a.py", "def add(a, b):\\n    return \\n")
    result = await driver.inline("file:///tmp/a.py", 1, 11)
    await driver.stop()
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

from .serve_command import server_command


class LspDriver:
    def __init__(self, client: LanguageClient):
        self.client = client
        self.diagnostics: dict[str, list[lsp.Diagnostic]] = {}
        self.messages: list[str] = []
        self.applied_edits: list[lsp.WorkspaceEdit] = []
        self.progress: list[Any] = []
        self._ids = itertools.count(1)
        self._versions: dict[str, int] = {}
        self._stderr_task: asyncio.Task | None = None

    @classmethod
    async def start(
        cls,
        model_dir: str | Path | None = None,
        options: dict | None = None,
        server_args: tuple[str, ...] = (),
        root: Path | None = None,
        stderr_to: Any = None,
    ) -> LspDriver:
        """Start the server (`python -m sdls serve`) and initialize it with `options` as initializationOptions.
        The server's log goes to `stderr_to` (a writable text file), or is discarded."""
        client = LanguageClient("sdls-driver", "1")
        driver = cls(client)
        driver._register()
        cmd = server_command(str(model_dir) if model_dir else None, *server_args)
        await client.start_io(*cmd)
        # pygls pipes the server's stderr; drain it, or a chatty server blocks once the pipe is full.
        driver._stderr_task = asyncio.ensure_future(_drain(client._server.stderr, stderr_to))
        caps = lsp.ClientCapabilities(window=lsp.WindowClientCapabilities(work_done_progress=True))
        await client.initialize_async(
            lsp.InitializeParams(
                capabilities=caps,
                initialization_options=options or {},
                root_uri=root.as_uri() if root else None,
                process_id=None,
            )
        )
        client.initialized(lsp.InitializedParams())
        return driver

    def _register(self) -> None:
        c = self.client

        @c.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
            self.diagnostics[params.uri] = list(params.diagnostics)

        @c.feature(lsp.WINDOW_SHOW_MESSAGE)
        def show_message(params: lsp.ShowMessageParams) -> None:
            self.messages.append(params.message)

        @c.feature(lsp.WINDOW_LOG_MESSAGE)
        def log_message(params: lsp.LogMessageParams) -> None:
            pass

        @c.feature(lsp.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create_progress(params: lsp.WorkDoneProgressCreateParams) -> None:
            return None

        @c.feature(lsp.PROGRESS)
        def progress(params: lsp.ProgressParams) -> None:
            self.progress.append(params.value)

        @c.feature(lsp.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: lsp.ApplyWorkspaceEditParams) -> lsp.ApplyWorkspaceEditResult:
            self.applied_edits.append(params.edit)
            return lsp.ApplyWorkspaceEditResult(applied=True)

    # -- documents ------------------------------------------------------------------------------
    async def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self._versions[uri] = version
        self.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, language, version, text))
        )

    def change(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> int:
        """Replace the range with `text`; returns the new version."""
        version = self._versions[uri] = self._versions[uri] + 1
        rng = lsp.Range(lsp.Position(*start), lsp.Position(*end))
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                [lsp.TextDocumentContentChangePartial(range=rng, text=text)],
            )
        )
        return version

    # -- requests -------------------------------------------------------------------------------
    def inline_request(self, uri: str, line: int, col: int, invoked: bool = False) -> tuple[str, asyncio.Future]:
        """Send an inline completion request; returns (id, future) so it can be cancelled."""
        msg_id = f"inline-{next(self._ids)}"
        kind = lsp.InlineCompletionTriggerKind.Invoked if invoked else lsp.InlineCompletionTriggerKind.Automatic
        params = lsp.InlineCompletionParams(
            context=lsp.InlineCompletionContext(trigger_kind=kind),
            text_document=lsp.TextDocumentIdentifier(uri),
            position=lsp.Position(line, col),
        )
        future = self.client.protocol.send_request(lsp.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
        return msg_id, asyncio.wrap_future(future) if not isinstance(future, asyncio.Future) else future

    def cancel(self, msg_id: str) -> None:
        self.client.cancel_request(lsp.CancelParams(id=msg_id))

    async def inline(self, uri: str, line: int, col: int, invoked: bool = True):
        return await self.inline_request(uri, line, col, invoked)[1]

    async def code_actions(self, uri: str, start: tuple[int, int], end: tuple[int, int]) -> list[lsp.CodeAction]:
        return (
            await self.client.text_document_code_action_async(
                lsp.CodeActionParams(
                    lsp.TextDocumentIdentifier(uri),
                    lsp.Range(lsp.Position(*start), lsp.Position(*end)),
                    lsp.CodeActionContext(diagnostics=[]),
                )
            )
            or []
        )

    async def resolve(self, action: lsp.CodeAction) -> lsp.CodeAction:
        return await self.client.code_action_resolve_async(action)

    async def hover(self, uri: str, line: int, col: int) -> lsp.Hover | None:
        return await self.client.text_document_hover_async(
            lsp.HoverParams(lsp.TextDocumentIdentifier(uri), lsp.Position(line, col))
        )

    async def stats(self) -> Any:
        """The server's counters (`sdls/stats`): requests, cancellations, cache, worker lanes, memory."""
        return await self.client.protocol.send_request_async("sdls/stats", None)

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 10)
            self.client.exit(None)
        except Exception as exc:  # a server that is already gone: nothing to shut down
            print(f"sdls driver: shutdown: {type(exc).__name__} {exc}", file=sys.stderr)
        await self.client.stop()
        if self._stderr_task is not None:
            self._stderr_task.cancel()


async def _drain(stream: asyncio.StreamReader | None, sink: Any) -> None:
    while stream is not None and (line := await stream.readline()):
        if sink is not None:
            sink.write(line.decode("utf-8", "replace"))
            sink.flush()
