"""The language server: LSP params -> a plain core call -> LSP result, one short handler per feature.

Request discipline (every request gets exactly one response):
- a bad request (unknown URI, a position past the end or inside a surrogate pair) -> InvalidParams;
- no model (missing/corrupt checkpoint, dead worker) -> RequestFailed with the reason, shown once
  with window/showMessage; the server keeps running and retries later;
- `$/cancelRequest`, or a newer inline request for the same document -> the job stops in the
  worker within one denoising step; the older request is answered RequestCancelled/ServerCancelled;
- the document changed while the model worked -> ContentModified (the stale result is dropped).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path

from lsprotocol import types as lsp
from lsprotocol.converters import get_converter
from pygls.capabilities import get_capability
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from sdls.memory import rss_mb
from sdls.syntax import syntax_errors
from sdls.worker.client import ModelUnavailable, WorkerError

from . import convert
from .actions import Offer, offer_actions, resolve_offer
from .backends import open_backend
from .completion import DocumentChanged, JobCancelled, complete_at, decode_settings
from .completion_cache import CompletionCache
from .documents import DocumentStore, UnknownDocument
from .edits import Budget, NoChange
from .fixups import propose_fixup
from .positions import PositionError
from .prompt import declarations_header
from .settings import Settings, settings_from
from .workspace_index import DeclarationIndex

log = logging.getLogger(__name__)
APPLY_FIX = "sdls.applyFix"
_converter = get_converter()


def _error(code: lsp.LSPErrorCodes, message: str) -> JsonRpcException:
    return JsonRpcException(code=int(code), message=message)


def request(fn):
    """Map core exceptions to the LSP error each one means (see the module docstring)."""

    @functools.wraps(fn)
    async def handler(ls: SdlsServer, params):
        ls.counters[fn.__name__] += 1
        try:
            return await fn(ls, params)
        except (UnknownDocument, PositionError) as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        except ModelUnavailable as exc:
            ls.announce(f"sdls: the model is unavailable: {exc}")
            raise _error(lsp.LSPErrorCodes.RequestFailed, f"model unavailable: {exc}") from None
        except (WorkerError, NoChange) as exc:
            raise _error(lsp.LSPErrorCodes.RequestFailed, str(exc)) from None
        except DocumentChanged as exc:
            ls.counters["stale"] += 1
            raise _error(lsp.LSPErrorCodes.ContentModified, str(exc)) from None
        except JobCancelled as exc:
            raise _error(lsp.LSPErrorCodes.ServerCancelled, str(exc)) from None
        except asyncio.TimeoutError:
            raise _error(lsp.LSPErrorCodes.RequestFailed, "the model did not answer in time") from None

    return handler


class SdlsServer(LanguageServer):
    def __init__(self, defaults: Settings | None = None):
        from sdls import __version__

        super().__init__(
            "sdls",
            __version__ if isinstance(__version__, str) else "0",
            text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
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
        self.superseded: set[asyncio.Task] = set()
        self.diagnostic_tasks: dict[str, asyncio.Task] = {}
        self.counters: Counter = Counter()
        self.latencies: list[dict] = []  # per answered inline request: ms, scope, source (for benchmarks)
        self._announced: set[str] = set()

    # -- shared plumbing ----------------------------------------------------------------------
    def announce(self, message: str) -> None:
        """Show an error to the user once (not on every keystroke)."""
        if message not in self._announced:
            self._announced.add(message)
            self.window_show_message(lsp.ShowMessageParams(type=lsp.MessageType.Error, message=message))

    async def get_backend(self):
        s = self.settings
        key = (s.model.path, s.model.device, s.model.dtype, s.model.max_context, s.worker.in_process, s.worker.socket)
        async with self._backend_lock:
            if self.backend is None or self._backend_key != key:
                if self.backend is not None:
                    await self.backend.close()
                self.backend = await open_backend(s)
                self._backend_key = key
        return self.backend

    def budget(self) -> Budget:
        c = self.settings.completion
        return Budget(before=c.prefix_chars, after=c.suffix_chars, max_tokens=self.settings.actions.max_tokens)

    def check_current(self, uri: str, version: int) -> None:
        if uri not in self.docs or self.docs.get(uri).version != version:
            raise DocumentChanged(f"{uri} changed (version {version} is outdated); result dropped")

    def cross_file_header(self, doc) -> str:
        if self.index is None or not self.settings.completion.cross_file or not doc.uri.startswith("file:"):
            return ""
        path = Path(to_fs_path(doc.uri))
        files = self.index.context_for(doc.text, path, doc.language)
        return declarations_header(doc.language, files, self.settings.completion.prefix_chars // 3)

    def apply_settings(self, data) -> None:
        self.settings, warnings = settings_from(data, self.settings)
        for warning in warnings:
            self.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Warning, message=f"sdls: {warning}"))
        self.docs.max_chars = self.settings.max_document_chars
        self.set_roots(self.roots)  # completion.crossFile may have changed

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

    def schedule_diagnostics(self, uri: str, delay_s: float) -> None:
        old = self.diagnostic_tasks.pop(uri, None)
        if old is not None:
            old.cancel()
        self.diagnostic_tasks[uri] = asyncio.ensure_future(self._publish_diagnostics(uri, delay_s))

    async def _publish_diagnostics(self, uri: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if uri not in self.docs:
            return
        doc = self.docs.get(uri)
        issues = syntax_errors(doc.syntax) if self.settings.diagnostics.enabled else []
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

    async def complete(self, doc, offset: int, trigger: lsp.InlineCompletionTriggerKind):
        c = self.settings.completion
        if c.debounce_ms:
            await asyncio.sleep(c.debounce_ms / 1000)
        return await asyncio.wait_for(
            complete_at(
                doc,
                offset,
                backend=await self.get_backend(),
                settings=c,
                cache=self.cache,
                invoked=trigger == lsp.InlineCompletionTriggerKind.Invoked,
                header=self.cross_file_header(doc),
            ),
            timeout=c.timeout_s,
        )

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


def create_server(defaults: Settings | None = None) -> SdlsServer:
    ls = SdlsServer(defaults)
    _register(ls)
    return ls


def _register(server: SdlsServer) -> None:
    @server.feature(lsp.INITIALIZE)
    def initialize(ls: SdlsServer, params: lsp.InitializeParams) -> None:
        ls.settings, warnings = settings_from(params.initialization_options, ls.defaults)
        for warning in warnings:
            ls.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Warning, message=f"sdls: {warning}"))
        negotiated = ls.workspace.position_encoding
        encoding = str(getattr(negotiated, "value", negotiated) or "utf-16")
        ls.docs = DocumentStore(ls.settings.max_document_chars, encoding)
        ls.cache = CompletionCache(ls.settings.completion.cache_size)
        roots = [Path(to_fs_path(f.uri)) for f in (params.workspace_folders or [])]
        if not roots and params.root_uri:
            roots = [Path(to_fs_path(params.root_uri))]
        ls.set_roots(roots)

    @server.feature(lsp.INITIALIZED)
    async def initialized(ls: SdlsServer, params: lsp.InitializedParams) -> None:
        await ls.pull_settings()

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: SdlsServer, params: lsp.DidChangeConfigurationParams) -> None:
        if params.settings:  # pushed; an empty change means "ask me" (the pull model)
            ls.apply_settings(params.settings)
        else:
            await ls.pull_settings()

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def did_change_workspace_folders(ls: SdlsServer, params: lsp.DidChangeWorkspaceFoldersParams) -> None:
        removed = {Path(to_fs_path(f.uri)) for f in params.event.removed}
        added = [Path(to_fs_path(f.uri)) for f in params.event.added]
        kept = [r for r in ls.roots if r not in removed]
        ls.set_roots(kept + [a for a in added if a not in kept])

    @server.feature(lsp.SHUTDOWN)
    async def shutdown(ls: SdlsServer, *_args) -> None:
        if ls.index is not None:
            ls.index.stop()
        if ls.backend is not None:
            await ls.backend.close()
            ls.backend = None

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: SdlsServer, params: lsp.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        ls.docs.open(item.uri, item.language_id, item.version, item.text)
        ls.schedule_diagnostics(item.uri, 0.0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: SdlsServer, params: lsp.DidChangeTextDocumentParams) -> None:
        changes = []
        for change in params.content_changes:
            rng = getattr(change, "range", None)
            span = (rng.start.line, rng.start.character, rng.end.line, rng.end.character) if rng else None
            changes.append((span, change.text))
        try:
            ls.docs.change(params.text_document.uri, params.text_document.version, changes)
        except (UnknownDocument, PositionError) as exc:
            ls.announce(
                f"sdls: {params.text_document.uri} is out of sync after a change that did not fit "
                f"({exc}); reopen the file"
            )
            return
        ls.schedule_diagnostics(params.text_document.uri, 0.15)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: SdlsServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.docs.close(params.text_document.uri)
        ls.cache.forget(params.text_document.uri)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    @server.feature(lsp.TEXT_DOCUMENT_INLINE_COMPLETION, lsp.InlineCompletionOptions())
    @request
    async def inline_completion(ls: SdlsServer, params: lsp.InlineCompletionParams):
        uri = params.text_document.uri
        doc = ls.docs.get(uri)
        offset = doc.offset(params.position.line, params.position.character)
        if not ls.settings.completion.enabled or not ls.settings.language_enabled(doc.language_id):
            return None
        started, version = time.perf_counter(), doc.version
        outcome = await ls.newest_wins(uri, ls.complete(doc, offset, params.context.trigger_kind))
        ls.check_current(uri, version)
        ls.record(outcome, started)
        if outcome.result is None:
            log.debug("no inline completion at %s:%d: %s", uri, offset, outcome.reason)
            return lsp.InlineCompletionList(items=[])
        r = outcome.result
        return lsp.InlineCompletionList(
            items=[lsp.InlineCompletionItem(insert_text=r.text, range=convert.lsp_range(doc, r.start, r.end))]
        )

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(
            code_action_kinds=[lsp.CodeActionKind.RefactorRewrite, lsp.CodeActionKind.QuickFix], resolve_provider=True
        ),
    )
    @request
    async def code_action(ls: SdlsServer, params: lsp.CodeActionParams):
        doc = ls.docs.get(params.text_document.uri)
        start = doc.offset(params.range.start.line, params.range.start.character)
        end = doc.offset(params.range.end.line, params.range.end.character)
        if doc.binary or not ls.settings.language_enabled(doc.language_id):
            return []
        only = [getattr(k, "value", k) for k in (params.context.only or [])]  # str enums: compare values
        actions = []
        for offer in offer_actions(doc.syntax, start, min(max(start, end), len(doc.text)), ls.settings.actions):
            if only and not any(offer.kind.startswith(k) for k in only):
                continue
            data = {
                "uri": doc.uri,
                "version": doc.version,
                "action": offer.action,
                "title": offer.title,
                "start": offer.start,
                "end": offer.end,
                "kind": offer.kind,
                "issue": [offer.issue.start, offer.issue.end, offer.issue.message, offer.issue.kind]
                if offer.issue
                else None,
            }
            fixes = [
                d
                for d in params.context.diagnostics or []
                if offer.issue and d.source == "sdls" and d.range.start.line == doc.position(offer.issue.start)[0]
            ]
            actions.append(
                lsp.CodeAction(
                    title=offer.title,
                    kind=offer.kind,
                    data=data,
                    diagnostics=fixes or None,
                    is_preferred=True if offer.issue else None,
                )
            )
        return actions

    @server.feature(lsp.CODE_ACTION_RESOLVE)
    @request
    async def code_action_resolve(ls: SdlsServer, action: lsp.CodeAction):
        data = action.data if isinstance(action.data, dict) else {}
        try:
            offer = _offer_from(data)
            uri, version = data["uri"], int(data["version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise JsonRpcInvalidParams(f"code action data is not one sdls made: {exc}") from None
        ls.check_current(uri, version)
        doc = ls.docs.get(uri)
        async with ls.progress(offer.title) as report:
            edits = await resolve_offer(
                doc.syntax,
                offer,
                backend=await ls.get_backend(),
                settings=ls.settings.actions,
                decode=decode_settings(ls.settings.completion),
                budget=ls.budget(),
                validate=ls.settings.actions.validate,
                progress=report,
            )
        ls.check_current(uri, version)
        action.edit = convert.versioned_edit(doc, version, convert.text_edits(doc, edits))
        return action

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    @request
    async def hover(ls: SdlsServer, params: lsp.HoverParams):
        doc = ls.docs.get(params.text_document.uri)
        offset = doc.offset(params.position.line, params.position.character)
        if not ls.settings.hover.enabled or doc.binary or doc.language is None:
            return None
        version = doc.version
        fix = await ls.newest_wins(
            f"hover {doc.uri}",
            propose_fixup(  # the mouse moved on: drop the old one
                doc.syntax,
                offset,
                backend=await ls.get_backend(),
                settings=ls.settings.actions,
                decode=decode_settings(ls.settings.completion),
                budget=ls.budget(),
                validate=ls.settings.actions.validate,
                use_doubt=ls.settings.hover.doubt,
            ),
        )
        ls.check_current(doc.uri, version)
        if fix is None:
            return None
        markdown = lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=_hover_markdown(doc, version, fix))
        return lsp.Hover(contents=markdown, range=convert.lsp_range(doc, fix.start, fix.end))

    @server.command(APPLY_FIX)
    async def apply_fix(ls: SdlsServer, *args):
        try:
            spec = args[0]
            uri, version = spec["uri"], int(spec["version"])
            edits = [_converter.structure(e, lsp.TextEdit) for e in spec["edits"]]
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise JsonRpcInvalidParams(f"{APPLY_FIX} needs [{{uri, version, edits}}]: {exc}") from None
        if uri not in ls.docs or ls.docs.get(uri).version != version:
            raise _error(lsp.LSPErrorCodes.ContentModified, f"{uri} changed since the fix was proposed")
        doc = ls.docs.get(uri)
        result = await ls.workspace_apply_edit_async(
            lsp.ApplyWorkspaceEditParams(edit=convert.versioned_edit(doc, version, edits), label="sdls fix-up")
        )
        return {"applied": bool(result and result.applied)}

    @server.feature("sdls/stats")
    async def stats(ls: SdlsServer, _params=None):
        """Counters for benchmarks and `sdls demo`: requests, cancellations, cache, worker lanes."""
        backend_stats = {}
        if ls.backend is not None:
            try:
                backend_stats = await ls.backend.stats()
            except WorkerError as exc:
                backend_stats = {"error": str(exc)}
        return {
            "counters": dict(ls.counters),
            "latencies": ls.latencies,
            "cache": {"hits": ls.cache.hits, "along_hits": ls.cache.along_hits, "misses": ls.cache.misses},
            "worker": backend_stats,
            "worker_info": getattr(ls.backend, "info", None),
            "rss_mb": rss_mb(),
            "peak_rss_mb": rss_mb("VmHWM"),
            "settings": dataclasses.asdict(ls.settings),
            "workspace_roots": [str(r) for r in ls.roots],
            "heavy_modules": sorted(m for m in ("torch", "numpy", "transformers") if m in sys.modules),
        }


def _offer_from(data: dict) -> Offer:
    issue = None
    if data.get("issue"):
        from sdls.syntax import SyntaxIssue

        s, e, message, kind = data["issue"]
        issue = SyntaxIssue(int(s), int(e), str(message), str(kind))
    return Offer(
        str(data["action"]), str(data["title"]), str(data["kind"]), int(data["start"]), int(data["end"]), issue
    )


def _hover_markdown(doc, version: int, fix) -> str:
    lines = [f"**sdls** — {fix.problem}"]
    if not fix.edits:
        lines.append(f"\n_No fix-up: {fix.reason}_")
        return "\n".join(lines)
    edits = [
        {
            "range": {
                "start": {"line": r.range.start.line, "character": r.range.start.character},
                "end": {"line": r.range.end.line, "character": r.range.end.character},
            },
            "newText": r.new_text,
        }
        for r in convert.text_edits(doc, fix.edits)
    ]
    args = urllib.parse.quote(json.dumps([{"uri": doc.uri, "version": version, "edits": edits}]))
    lines += [
        "",
        "```diff",
        fix.diff,
        "```",
        "",
        f'[Apply fix-up](command:{APPLY_FIX}?{args} "Apply the proposed repair")',
    ]
    return "\n".join(lines)
