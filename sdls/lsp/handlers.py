"""The LSP handlers: LSP params -> one core call -> LSP result, one short module-level function per feature.

Each `@feature` / `@command` marks a function; `register(server)` attaches them all to a server (so
tests and tools may build several servers in one process).

Request discipline (every request gets exactly one response):
- a bad request (unknown URI, a position past the end or inside a surrogate pair, data or command
  arguments sdls did not make) -> InvalidParams;
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
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.uris import to_fs_path

from sdls.memory import rss_mb
from sdls.worker.client import ModelUnavailable, WorkerError

from . import convert
from .actions import issue_at, offer_actions, offer_problem, resolve_offer
from .arrival import ensure_as_arrived
from .completion import complete_at
from .completion_cache import CompletionCache
from .convert import APPLY_FIX, BadPayload, FixArguments, OfferData, from_json
from .documents import DocumentOutOfSync, DocumentStore, UnknownDocument, VersionNotIncreasing
from .edits import NoChange
from .fixups import fixup_for
from .language_server import SdlsServer, out_of_sync_key  # at run time: pygls reads the handlers' annotations
from .model_call import DocumentChanged, JobCancelled, ensure_current
from .next_edit_state import change_hint
from .positions import PositionError

log = logging.getLogger(__name__)
_FEATURES: list[tuple[str, Any, Callable]] = []
_COMMANDS: list[tuple[str, Callable]] = []


def feature(method: str, options: Any = None):
    """Mark a handler of `method` (with its options, as pygls' `server.feature` takes them)."""

    def mark(fn: Callable) -> Callable:
        _FEATURES.append((method, options, fn))
        return fn

    return mark


def command(name: str):
    """Mark a handler of workspace/executeCommand `name`."""

    def mark(fn: Callable) -> Callable:
        _COMMANDS.append((name, fn))
        return fn

    return mark


def register(server: SdlsServer) -> None:
    for method, options, fn in _FEATURES:
        server.feature(method, options)(fn)
    for name, fn in _COMMANDS:
        server.command(name)(fn)


def _error(code: lsp.LSPErrorCodes, message: str) -> JsonRpcException:
    return JsonRpcException(code=int(code), message=message)


def request(fn):
    """Map core exceptions to the LSP error each one means (see the module docstring)."""

    @functools.wraps(fn)
    async def handler(ls: SdlsServer, *params):
        ls.counters[fn.__name__] += 1
        try:
            ensure_as_arrived(ls.docs, params[0] if params else None)
            return await fn(ls, *params)
        except (UnknownDocument, PositionError, BadPayload) as exc:
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


# -- lifecycle and workspace ------------------------------------------------------------------
@feature(lsp.INITIALIZE)
def initialize(ls: SdlsServer, params: lsp.InitializeParams) -> None:
    negotiated = ls.workspace.position_encoding
    ls.docs = DocumentStore(ls.settings.max_document_chars, str(getattr(negotiated, "value", negotiated) or "utf-16"))
    ls.apply_settings(params.initialization_options, base=ls.defaults)
    ls.cache = CompletionCache(ls.settings.completion.cache_size)
    roots = [Path(to_fs_path(f.uri)) for f in (params.workspace_folders or [])]
    if not roots and params.root_uri:
        roots = [Path(to_fs_path(params.root_uri))]
    ls.set_roots(roots)


@feature(lsp.INITIALIZED)
async def initialized(ls: SdlsServer, params: lsp.InitializedParams) -> None:
    await ls.pull_settings()


@feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: SdlsServer, params: lsp.DidChangeConfigurationParams) -> None:
    if params.settings:  # pushed; an empty change means "ask me" (the pull model)
        ls.apply_settings(params.settings)
    else:
        await ls.pull_settings()


@feature(lsp.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def did_change_workspace_folders(ls: SdlsServer, params: lsp.DidChangeWorkspaceFoldersParams) -> None:
    removed = {Path(to_fs_path(f.uri)) for f in params.event.removed}
    added = [Path(to_fs_path(f.uri)) for f in params.event.added]
    kept = [r for r in ls.roots if r not in removed]
    ls.set_roots(kept + [a for a in added if a not in kept])


@feature(lsp.SHUTDOWN)
async def shutdown(ls: SdlsServer, *_args) -> None:
    if ls.index is not None:
        ls.index.stop()
    ls.stop_syntax_threads()
    if ls.backend is not None:
        await ls.backend.close()
        ls.backend = None


# -- document sync ----------------------------------------------------------------------------
@feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: SdlsServer, params: lsp.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    ls.docs.open(item.uri, item.language_id, item.version, item.text)
    ls.forget_announcement(out_of_sync_key(item.uri))  # in sync again: a new desync is told again
    ls.schedule_diagnostics(item.uri, 0.0)


@feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: SdlsServer, params: lsp.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    changes = [convert.content_change(c) for c in params.content_changes]
    try:
        old = ls.docs.get(uri)
        before, lines = old.text, old.lines
        doc = ls.docs.change(uri, params.text_document.version, changes)
    except (UnknownDocument, PositionError, VersionNotIncreasing) as exc:
        ls.next_edits.close(uri)
        ls.cache.forget(uri)
        ls.cancel_diagnostics(uri)
        reason = exc.args[1] if isinstance(exc, DocumentOutOfSync) else str(exc)
        ls.announce(f"sdls: {uri} is out of sync ({reason}); reopen the file", once_for=out_of_sync_key(uri))
        return
    ls.next_edits.observe(doc, before, change_hint(lines, changes[0] if changes else None))
    ls.schedule_diagnostics(uri, 0.15)


@feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: SdlsServer, params: lsp.DidCloseTextDocumentParams) -> None:
    ls.forget_document(params.text_document.uri)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))


# -- model features ---------------------------------------------------------------------------
@feature(lsp.TEXT_DOCUMENT_INLINE_COMPLETION, lsp.InlineCompletionOptions())
@request
async def inline_completion(ls: SdlsServer, params: lsp.InlineCompletionParams):
    doc = ls.docs.get(params.text_document.uri)
    offset = doc.offset(params.position.line, params.position.character)
    if not ls.settings.completion.enabled or not ls.settings.language_enabled(doc.language_id):
        return None
    started, version = time.perf_counter(), doc.version
    invoked = params.context.trigger_kind == lsp.InlineCompletionTriggerKind.Invoked
    outcome = await ls.newest_wins(doc.uri, _complete(ls, doc, offset, invoked))
    ensure_current(ls.docs.find(doc.uri), version)
    ls.record(outcome, started)
    if outcome.result is None:
        log.debug("no inline completion at %s:%d: %s", doc.uri, offset, outcome.reason)
    return convert.inline_completions(doc, outcome.result)


async def _complete(ls: SdlsServer, doc, offset: int, invoked: bool):
    c = ls.settings.completion
    if c.debounce_ms:
        await asyncio.sleep(c.debounce_ms / 1000)
    call = await ls.model_call()
    work = complete_at(doc, offset, call, cache=ls.cache, invoked=invoked, header=ls.cross_file_header(doc))
    return await asyncio.wait_for(work, timeout=c.timeout_s)


@feature(
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
    version, end = doc.version, min(max(start, end), len(doc.text))
    offers = await ls.off_loop(offer_actions, doc.syntax, start, end, ls.settings.actions)
    doc = ls.docs.find(doc.uri)
    ensure_current(doc, version)
    return [
        convert.code_action(doc, offer, params.context.diagnostics or [])
        for offer in offers
        if not only or any(offer.kind.startswith(k) for k in only)
    ]


@feature(lsp.CODE_ACTION_RESOLVE)
@request
async def code_action_resolve(ls: SdlsServer, action: lsp.CodeAction):
    data = from_json(action.data, OfferData, "code action data is not one sdls made")
    doc = ls.docs.find(data.uri)
    ensure_current(doc, data.version, data.digest)
    if problem := offer_problem(doc.syntax, data.offer):
        raise BadPayload(f"code action data is not one sdls made: {problem}")
    async with ls.progress(data.offer.title) as report:
        edits = await resolve_offer(doc.syntax, data.offer, await ls.model_call(), progress=report)
    ensure_current(ls.docs.find(data.uri), data.version, data.digest)
    action.edit = convert.versioned_edit(doc, data.version, convert.text_edits(doc, edits))
    return action


@feature(lsp.TEXT_DOCUMENT_HOVER)
@request
async def hover(ls: SdlsServer, params: lsp.HoverParams):
    doc = ls.docs.get(params.text_document.uri)
    offset = doc.offset(params.position.line, params.position.character)
    if not ls.settings.hover.enabled or doc.binary or doc.language is None:
        return None
    version, digest = doc.version, doc.digest
    issue = await ls.off_loop(issue_at, doc.syntax, offset)
    ensure_current(ls.docs.find(doc.uri), version, digest)
    call = await ls.model_call()
    work = fixup_for(doc.syntax, offset, issue, call, use_doubt=ls.settings.hover.doubt)
    fix = await ls.newest_wins(f"hover {doc.uri}", work)  # the mouse moved on: drop the old one
    ensure_current(ls.docs.find(doc.uri), version, digest)
    return convert.hover(doc, version, fix) if fix is not None else None


@command(APPLY_FIX)
@request
async def apply_fix(ls: SdlsServer, *args):
    spec = args[0] if len(args) == 1 else None
    fix = from_json(spec, FixArguments, f"{APPLY_FIX} needs [{{uri, version, digest, edits}}]")
    doc = ls.docs.find(fix.uri)
    ensure_current(doc, fix.version, fix.digest)  # the fix was proposed for that text
    for edit in fix.edits:  # inside the document (PositionError: InvalidParams)
        doc.offset(edit.range.start.line, edit.range.start.character)
        doc.offset(edit.range.end.line, edit.range.end.character)
    edit = convert.versioned_edit(doc, fix.version, fix.edits)
    result = await ls.workspace_apply_edit_async(lsp.ApplyWorkspaceEditParams(edit=edit, label="sdls fix-up"))
    return {"applied": bool(result and result.applied)}


@feature("sdls/stats")
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
        "next_edit": ls.next_edits.stats(),
        "heavy_modules": sorted(m for m in ("torch", "numpy", "transformers") if m in sys.modules),
    }
