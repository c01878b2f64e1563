"""The language server's state: settings, open documents, the backend, the workspace index, and the
plumbing the handlers share (newest-wins requests, diagnostics, progress, latency records).

The handlers themselves are module-level functions in handlers.py; `create_server` attaches them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types as lsp
from pygls.capabilities import get_capability
from pygls.lsp.server import LanguageServer
from pygls.protocol.json_rpc import RPCRequest
from pygls.uris import to_fs_path

from sdls.syntax import SyntaxDocument, syntax_errors

from . import convert
from .arrival import note_arrival
from .backends import open_backend
from .completion_cache import CompletionCache
from .documents import DocumentStore, UnknownDocument
from .model_call import JobCancelled, ModelCall
from .next_edit_state import NextEdits
from .prompt import declarations_header
from .pygls_state import ForgetFinished, OwnDocuments
from .rpc_protocol import AnswerEveryRequest, strict_converter
from .settings import Settings, editor_key, keep_startup_only, settings_from
from .workspace_index import DeclarationIndex

log = logging.getLogger(__name__)
ANNOUNCED = 256  # messages remembered as told
T = TypeVar("T")


def out_of_sync_key(uri: str) -> str:
    """What the user is told once per desync of a document under (announce's once_for)."""
    return f"out of sync: {uri}"


class SdlsServer(LanguageServer):
    def __init__(self, defaults: Settings | None = None):
        from sdls import __version__

        super().__init__(
            "sdls",
            __version__ if isinstance(__version__, str) else "0",
            text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
            protocol_cls=_protocol_cls(),
            converter_factory=strict_converter,
        )
        self.defaults = defaults or Settings()
        self.settings = self.defaults
        self.docs = DocumentStore(self.settings.max_document_chars)
        self.cache = CompletionCache(self.settings.completion.cache_size)
        self.backend = None
        self._backend_key = None
        self._backend_lock = asyncio.Lock()
        self.index: DeclarationIndex | None = None
        self.roots: list[Path] = []
        self.latest_tasks: dict[str, asyncio.Task] = {}
        self.superseded: weakref.WeakSet[asyncio.Task] = weakref.WeakSet()  # a task that swallowed its cancel goes too
        self.diagnostic_tasks: dict[str, asyncio.Task] = {}
        self.counters: Counter = Counter()
        self.latencies: list[dict] = []  # per answered inline request: ms, scope, source (for benchmarks)
        self._announced: OrderedDict[str, None] = OrderedDict()  # what the user was told (bounded)
        self.next_edits = NextEdits(lambda: self.settings.next_edit)
        self.next_edits.model_call = self.model_call
        self.next_edits.documents = lambda: self.docs.all()  # the store is replaced at initialize
        self.next_edits.roots = lambda: self.roots
        self._syntax_pool: ThreadPoolExecutor | None = None

    # -- transports (sdls's framing reader in place of pygls' loop: see transport.py) ------------
    def start_io(self, stdin=None, stdout=None) -> None:
        from .transport import serve_stdio

        serve_stdio(self, stdin, stdout)

    def start_tcp_for_one(self, host: str, port: int, token: str, ready=None) -> None:
        from .transport import serve_tcp

        serve_tcp(self, host, port, token, ready)

    # -- shared plumbing ----------------------------------------------------------------------
    def announce(self, message: str, once_for: str | None = None, kind=lsp.MessageType.Error) -> None:
        """Show an error to the user once (not on every keystroke): once per message, or once per
        `once_for` key whatever the message (`forget_announcement` lets it be told again)."""
        key = message if once_for is None else once_for
        if key not in self._announced:
            self._announced[key] = None
            while len(self._announced) > ANNOUNCED:
                self._announced.popitem(last=False)  # a very old message may be told again
            self.window_show_message(lsp.ShowMessageParams(type=kind, message=message))

    def forget_announcement(self, key: str) -> None:
        self._announced.pop(key, None)

    def backend_key(self) -> tuple:
        """The settings a backend is opened with: another value opens another backend."""
        s = self.settings
        return (s.model, s.worker.in_process, s.worker.socket, s.worker.timeout_s)

    async def get_backend(self):
        s, key = self.settings, self.backend_key()
        async with self._backend_lock:
            if self.backend is None or self._backend_key != key:
                if self.backend is not None:
                    await self.backend.close()
                self.backend = await open_backend(s)
                self._backend_key = key
        return self.backend

    async def model_call(self) -> ModelCall:
        """What one model call needs under the current settings (opening the backend if need be)."""
        return ModelCall.from_settings(self.settings, await self.get_backend())

    def cross_file_header(self, doc) -> str:
        if self.index is None or not self.settings.completion.cross_file or not doc.uri.startswith("file:"):
            return ""
        path = Path(to_fs_path(doc.uri))
        files = self.index.context_for(doc.text, path, doc.language)
        return declarations_header(doc.language, files, self.settings.completion.prefix_chars // 3)

    def apply_settings(self, data, base: Settings | None = None) -> None:
        """Settings from the editor's JSON over `base` (given at initialize: the command line's), or a
        change over the current ones, where the STARTUP_ONLY settings keep their values (the user is
        told once per refused value); warnings go to the editor's log."""
        settings, warnings = settings_from(data, self.settings if base is None else base)
        if base is None:
            settings, refused = keep_startup_only(settings, self.settings)
            for path, value in refused:
                self._refuse_startup_only(path, value)
        self.settings = settings
        for warning in warnings:
            self.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Warning, message=f"sdls: {warning}"))
        self.docs.max_chars = self.settings.max_document_chars
        self.set_roots(self.roots)  # completion.crossFile may have changed

    def _refuse_startup_only(self, path: str, value: Any) -> None:
        message = (
            f"sdls: the setting {editor_key(path)} is taken only when the server starts (from your user "
            "settings or the command line), never from a configuration change, which a workspace can send; "
            "the change was refused. Restart the server to use a new value."
        )
        log.warning("refused a change of %s to %.200r", path, value)
        self.announce(message, once_for=f"startup-only {path}={value!r:.300}", kind=lsp.MessageType.Warning)

    async def pull_settings(self) -> None:
        """Ask the editor for the "sdls" section (workspace/configuration), where it supports that:
        editors that keep settings per workspace answer here rather than push them."""
        if not get_capability(self.client_capabilities, "workspace.configuration", False):
            return
        try:
            answer = await asyncio.wait_for(
                self.workspace_configuration_async(
                    lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section="sdls")])
                ),
                timeout=5.0,
            )
        except Exception as exc:  # an editor that cannot answer keeps the settings it pushed
            log.info("workspace/configuration not answered: %s", exc)
            return
        if answer and isinstance(answer[0], dict) and answer[0]:
            self.apply_settings(answer[0])

    def set_roots(self, roots: list[Path]) -> None:
        """The workspace folders whose files feed cross-file context (initialize, folder changes)."""
        self.roots = roots
        if not self.settings.completion.cross_file or not roots:
            if self.index is not None:
                self.index.stop()
                self.index = None
            return
        if self.index is None:
            self.index = DeclarationIndex(roots, open_text=self.open_text)
            self.index.start_watching(background=True)
        else:
            self.index.set_roots(roots)

    def open_text(self, path: Path) -> str | None:
        for doc in self.docs.all():
            if doc.uri.startswith("file:") and Path(to_fs_path(doc.uri)).resolve() == path:
                return doc.text
        return None

    async def off_loop(self, work: Callable[..., T], doc: SyntaxDocument, *args: Any) -> T:
        """`work(snapshot of doc, *args)` in a syntax thread: tree walks over a big or pathological
        document (50,000 unclosed brackets) must not hold up every other request. The thread reads
        a snapshot, so didChange goes on editing the document meanwhile; the caller checks the
        version afterwards. (Pure-Python walks give up the GIL every few ms; the loop keeps serving.)"""
        if self._syntax_pool is None:
            self._syntax_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sdls-syntax")
        return await asyncio.get_running_loop().run_in_executor(self._syntax_pool, work, doc.snapshot(), *args)

    def stop_syntax_threads(self) -> None:
        if self._syntax_pool is not None:
            self._syntax_pool.shutdown(wait=False, cancel_futures=True)
            self._syntax_pool = None

    def schedule_diagnostics(self, uri: str, delay_s: float) -> None:
        self.cancel_diagnostics(uri)
        task = self.diagnostic_tasks[uri] = asyncio.ensure_future(self._publish_diagnostics(uri, delay_s))
        task.add_done_callback(
            lambda done: self.diagnostic_tasks.pop(uri, None) if self.diagnostic_tasks.get(uri) is done else None
        )

    def cancel_diagnostics(self, uri: str) -> None:
        if (old := self.diagnostic_tasks.pop(uri, None)) is not None:
            old.cancel()

    def forget_document(self, uri: str) -> None:
        """Everything kept for `uri` goes with it (didClose): no per-document state outlives the document."""
        self.docs.close(uri)
        self.cancel_diagnostics(uri)
        self.cache.forget(uri)
        self.next_edits.close(uri)
        self.forget_announcement(out_of_sync_key(uri))

    async def _publish_diagnostics(self, uri: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            doc = self.docs.find(uri)
        except UnknownDocument:  # out of sync since: no diagnostics for a text the server no longer has
            return
        if doc is None:
            return
        version = doc.version
        issues = await self.off_loop(syntax_errors, doc.syntax) if self.settings.diagnostics.enabled else []
        if self.docs.version_of(uri) != version:
            return  # changed meanwhile: the change scheduled its own
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(
                uri=uri, version=doc.version, diagnostics=[convert.diagnostic(doc, i) for i in issues]
            )
        )

    async def newest_wins(self, key: str, work):
        """Run `work` as the one request of its kind for a document (`key`): a newer one cancels it
        (the engine stops within one denoising step) and it answers ServerCancelled; a client
        $/cancelRequest answers RequestCancelled."""
        task = asyncio.current_task()
        if (older := self.latest_tasks.get(key)) is not None and not older.done():
            self.superseded.add(older)
            older.cancel()
        self.latest_tasks[key] = task
        try:
            return await work
        except asyncio.CancelledError:
            if task in self.superseded:
                self.superseded.discard(task)
                self.counters["superseded"] += 1
                raise JobCancelled("superseded by a newer request for this document") from None
            self.counters["cancelled"] += 1
            raise
        finally:
            if self.latest_tasks.get(key) is task:
                del self.latest_tasks[key]

    def record(self, outcome, started: float) -> None:
        """One latency record per answered inline request (read by `sdls/stats`, the bench, editors)."""
        self.latencies.append(
            {
                "ms": round((time.perf_counter() - started) * 1e3, 2),
                "scope": outcome.scope,
                "source": outcome.result.source if outcome.result else "none",
                "forwards": outcome.stats.get("forwards", 0),
                "tokens": outcome.stats.get("tokens", 0),
                "reused_tokens": outcome.stats.get("reused_tokens", 0),
                "encoded_tokens": outcome.stats.get("encoded_tokens", 0),
            }
        )
        del self.latencies[:-5000]
        if outcome.result is not None:
            self.counters[f"completion_{outcome.result.source}"] += 1

    @asynccontextmanager
    async def progress(self, title: str):
        """$/progress around a long job, when the client accepts server-initiated progress."""
        window = self.client_capabilities.window if self.client_capabilities else None
        if not (window and window.work_done_progress):
            yield None
            return
        token = str(uuid.uuid4())
        await self.work_done_progress.create_async(token)
        self.work_done_progress.begin(token, lsp.WorkDoneProgressBegin(title=title, percentage=0))

        def report(message: str, percent: int) -> None:
            self.work_done_progress.report(token, lsp.WorkDoneProgressReport(message=message, percentage=percent))

        try:
            yield report
        finally:
            self.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message="done"))
            self.work_done_progress.tokens.pop(token, None)  # pygls keeps ended tokens (pygls#607)


def _protocol_cls():
    from .next_edit_handlers import NextEditProtocol  # it imports this module: reach it at call time

    class SdlsProtocol(ForgetFinished, OwnDocuments, AnswerEveryRequest, NextEditProtocol):
        def handle_message(self, message: Any) -> None:
            if isinstance(message, RPCRequest):  # before its handler's task copies the context
                note_arrival(getattr(self._server, "docs", None), message.params)
            super().handle_message(message)

    return SdlsProtocol


def create_server(defaults: Settings | None = None) -> SdlsServer:
    """A server with every handler of handlers.py and next_edit_handlers.py attached; `defaults` are
    what initializationOptions override."""
    from . import next_edit_handlers  # noqa: F401 (its handlers join handlers.py's on import)
    from .handlers import register  # handlers.py imports this module: reach it at call time

    server = SdlsServer(defaults)
    register(server)
    return server
