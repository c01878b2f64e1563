"""The server's next-edit state: one edit history per open document, the suggestion computed for its
current version, and what clients said about suggestions (shown, accepted, rejected). No LSP types.

Versioned: a suggestion is computed for one document version and served only while the document is
at that version; a change drops it (and cancels its computation). Requests for the same version
share one computation. Once any client has asked for a next edit, a computation also starts
`debounce_ms` after each edit settles, so the client's request (which itself waits for a pause in
typing) finds the answer ready. When nothing is left to do in the document, the uses of a renamed
top-level name in other open documents that import it come next (next_edit_workspace.py): such a
suggestion is bound to both versions, the asking document's and the one it edits, and either one
moving on drops it. Nothing here waits on clients: a client that never says shown,
accepted or rejected leaves one suggestion per document and a short ring of recent ones.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from pygls.uris import to_fs_path

from sdls.worker.client import ModelUnavailable, WorkerError
from sdls_model.jobs import TextEdit

from .documents import OpenDocument
from .edit_history import EditHistory, changed_span
from .edits import added_errors
from .model_call import DocumentChanged, JobCancelled, ModelCall
from .next_edit import NextEdit, NextEditOptions, NextEditOutcome, rejection_key, suggest_next_edit
from .next_edit_workspace import RULE as WORKSPACE_RULE
from .next_edit_workspace import ExportedRename, exported_rename, importer_sites
from .positions import LineIndex, PositionError
from .settings import NextEditSettings
from .workspace_index import declared_names

log = logging.getLogger(__name__)
RECENT = 64  # suggestions remembered after their version went (a late shown/accept still counts)
REJECTED = 64  # dismissed (old text, new text) pairs remembered per document


@dataclass
class Suggestion:
    id: str
    uri: str  # the document the edit applies to, at `version`
    version: int
    edit: NextEdit
    key: tuple[str, str]  # its lines before and after (what a dismissal remembers)
    origin: str = ""  # the document it was asked for, at `origin_version` (another one: a cross-file edit)
    origin_version: int = -1
    shown: bool = False
    outcome: str = ""  # "" | "accepted" | "rejected"


def change_hint(lines: LineIndex, first: tuple[tuple[int, int, int, int] | None, str] | None) -> int | None:
    """The offset in the old text where the editor says its first change starts (None: a full-text change)."""
    if first is None or first[0] is None:
        return None
    try:
        return lines.offset(first[0][0], first[0][1])
    except PositionError:
        return None


def _makes(before: str, e: NextEdit, after: str) -> bool:
    """Does applying `e` to `before` give `after`? (Lengths first: most changes differ there.)"""
    if len(before) - (e.end - e.start) + len(e.text) != len(after) or after[e.start : e.start + len(e.text)] != e.text:
        return False
    return after[: e.start] == before[: e.start] and after[e.start + len(e.text) :] == before[e.end :]


class NextEdits:
    def __init__(self, settings: Callable[[], NextEditSettings] = NextEditSettings, call_later=None):
        self.settings = settings
        self.call_later = call_later  # (delay_s, callback) -> handle with cancel(); default: the event loop's
        self.histories: dict[str, EditHistory] = {}
        self.current: dict[str, Suggestion] = {}  # uri -> the suggestion for the document's current version
        self.recent: OrderedDict[str, Suggestion] = OrderedDict()
        self.rejected: dict[str, OrderedDict] = {}
        self.tasks: dict[str, tuple[int, asyncio.Task]] = {}  # uri -> (version, computation)
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.counters: Counter = Counter()
        self.records: list[dict] = []  # per computed suggestion: ms, forwards, source (for benchmarks)
        self.asked = False  # some client asked for a next edit: prefetching is worth it
        self.model_error: str | None = None
        self._ids = itertools.count(1)
        self.model_call: Callable[[], Awaitable[ModelCall]] | None = None
        self.documents: Callable[[], list[OpenDocument]] = list  # the open documents (cross-file sites)
        self.roots: Callable[[], list[Path]] = list  # the workspace folders (resolving imports)
        self.exported: ExportedRename | None = None  # the user's last rename of a top-level name

    # -- document events ---------------------------------------------------------------------------
    def observe(self, doc: OpenDocument, before: str, hint: int | None = None) -> None:
        """The document changed from `before` to `doc.text` (now at doc.version)."""
        uri = doc.uri
        self._drop_current(uri)
        if doc.binary or doc.oversized or doc.language is None:
            self.histories.pop(uri, None)  # huge, binary or plain text: no history, no suggestions
            return
        span = changed_span(before, doc.text, hint)
        if span is None:
            return
        s = self.settings()
        history = self.histories.get(uri)
        if history is None or (history.max_events, history.max_chars) != (s.history_events, s.history_chars):
            history = self.histories[uri] = EditHistory(s.history_events, s.history_chars)
        accepted = self._was_suggested(uri, before, doc.text)
        if not accepted and self.exported is not None and self.exported.uri != uri:
            self.exported = None  # the user went on to edit elsewhere: the rename is no longer the context
        history.observe(doc.version, span, before, accepted=accepted)
        if self.asked and s.enabled and s.debounce_ms > 0 and self.model_call is not None:
            self._schedule(doc, s.debounce_ms / 1000)

    def close(self, uri: str) -> None:
        self._drop_current(uri)
        self.histories.pop(uri, None)
        self.rejected.pop(uri, None)
        if self.exported is not None and self.exported.uri == uri:
            self.exported = None

    def _was_suggested(self, uri: str, before: str, after: str) -> bool:
        """Is this change exactly a suggestion sdls made for the text before it (an editor applying it)?
        Compared by the text it makes, not by span: an editor may send the same change trimmed or whole."""
        return any(s.uri == uri and _makes(before, s.edit, after) for s in reversed(self.recent.values()))

    def _drop_current(self, uri: str) -> None:
        """The document moved on: its suggestion is stale, its computation pointless."""
        if (old := self.current.pop(uri, None)) is not None:
            self.counters["dropped_stale"] += 1
            self._remember(old)
        for origin, s in list(self.current.items()):  # a cross-file suggestion that edits this document
            if s.uri == uri:
                self.counters["dropped_stale"] += 1
                self._remember(self.current.pop(origin))
        if (running := self.tasks.pop(uri, None)) is not None:
            running[1].cancel()
        if (timer := self.timers.pop(uri, None)) is not None:
            timer.cancel()

    def _remember(self, s: Suggestion) -> None:
        self.recent[s.id] = s
        while len(self.recent) > RECENT:
            self.recent.popitem(last=False)

    def _schedule(self, doc: OpenDocument, delay_s: float) -> None:
        call_later = self.call_later or asyncio.get_running_loop().call_later
        version = doc.version
        self.timers[doc.uri] = call_later(delay_s, lambda: self._computation(doc, version, prefetch=True))

    # -- requests ----------------------------------------------------------------------------------
    async def request(self, doc: OpenDocument, version: int | None) -> tuple[Suggestion | None, str]:
        """The suggestion for `doc` at `version` (None: whatever is current), computing it if need be."""
        self.asked = True
        self.counters["requests"] += 1
        if not self.settings().enabled:
            return None, "next edits are turned off (settings: nextEdit.enabled)"
        if version is not None and version != doc.version:
            self.counters["stale_requests"] += 1
            return None, f"the request is for version {version}, the document is at {doc.version}"
        version = doc.version
        if (ready := self.current.get(doc.uri)) is not None and ready.origin_version == version:
            self.counters["served_ready"] += 1
            return ready, "ready"
        task = self._computation(doc, version, prefetch=False)
        await asyncio.wait({task})  # the request's own cancellation leaves the shared computation running
        if task.cancelled():
            return None, "the document changed while the suggestion was computed"
        suggestion, reason = task.result()
        if doc.version != version:
            return None, "the document changed while the suggestion was computed"
        return suggestion, reason

    def _computation(self, doc: OpenDocument, version: int, prefetch: bool) -> asyncio.Task:
        self.timers.pop(doc.uri, None)
        running = self.tasks.get(doc.uri)
        if running is not None and running[0] == version and not running[1].done():
            return running[1]
        task = asyncio.ensure_future(self._compute(doc, version))
        self.tasks[doc.uri] = (version, task)
        if prefetch:
            self.counters["prefetched"] += 1
        return task

    async def _compute(self, doc: OpenDocument, version: int) -> tuple[Suggestion | None, str]:
        s = self.settings()
        options = NextEditOptions(
            rules=s.rules, model=s.model, max_sites=s.max_sites, max_jobs=s.max_jobs, rewrite_rules=s.rewrite_rules
        )
        history = self.histories.get(doc.uri)
        if history is None:
            found = self._elsewhere(doc)
            return self._settle_elsewhere(doc, version, *found) if found else (None, "no edit of the user's to follow")
        event = history.user_event(doc.text)
        if (renamed := exported_rename(doc.syntax, event)) is not None and doc.uri.startswith("file:"):
            self.exported = ExportedRename(doc.uri, Path(to_fs_path(doc.uri)).resolve(), *renamed)
        elif event is not None and self.exported is not None and self.exported.uri == doc.uri:
            self.exported = None  # the user's last edit there is another one now
        rejected = set(self.rejected.get(doc.uri, ()))
        try:
            outcome = await asyncio.wait_for(
                suggest_next_edit(doc.syntax, history, self._open_model if s.model else None, options, rejected),
                s.timeout_s,
            )
        except (DocumentChanged, JobCancelled) as exc:
            return None, str(exc)
        except (WorkerError, ValueError, asyncio.TimeoutError) as exc:  # ValueError: a region the engine refuses
            self.counters["failed"] += 1
            log.info("next edit for %s failed: %s", doc.uri, exc)
            return None, f"the model failed: {exc or type(exc).__name__}"
        except Exception as exc:  # a bug here must not take the server down: log it, suggest nothing
            self.counters["failed"] += 1
            log.exception("next edit for %s failed", doc.uri)
            return None, f"internal error: {type(exc).__name__}"
        if outcome.edit is None and doc.version == version and (found := self._elsewhere(doc)) is not None:
            return self._settle_elsewhere(doc, version, *found)
        return self._settle(doc, version, outcome)

    def _elsewhere(self, doc: OpenDocument) -> tuple[OpenDocument, NextEdit] | None:
        """The first use of the user's last exported rename left in an open importer: `doc` first (the
        chain goes on where the last one was applied), then the others in uri order."""
        try:
            return self._find_elsewhere(doc)
        except Exception:  # a bug here must not take the server down: log it, suggest nothing
            self.counters["failed"] += 1
            log.exception("cross-file next edit for %s failed", doc.uri)
            return None

    def _find_elsewhere(self, doc: OpenDocument) -> tuple[OpenDocument, NextEdit] | None:
        rename = self.exported
        if rename is None:
            return None
        source = next((d for d in self.documents() if d.uri == rename.uri), None)
        names = declared_names(source.syntax) if source is not None else set()
        if rename.new not in names or rename.old in names:  # the renamed declaration has gone (or went back)
            self.exported = None
            return None
        others = sorted((d for d in self.documents() if d.uri not in (doc.uri, rename.uri)), key=lambda d: d.uri)
        for target in ([doc] if doc.uri != rename.uri else []) + others:
            if target.binary or target.oversized or target.language is None or not target.uri.startswith("file:"):
                continue
            path = Path(to_fs_path(target.uri)).resolve()
            rejected = self.rejected.get(target.uri, {})
            for cand in importer_sites(target.syntax, path, rename, self.roots()):
                edit = cand.proposal
                if edit is None or rejection_key(target.text, edit) in rejected:
                    continue
                if added_errors(target.syntax, [edit]) == 0:
                    return target, NextEdit(edit.start, edit.end, edit.new_text, "rule", WORKSPACE_RULE)
        return None

    def _settle_elsewhere(self, doc: OpenDocument, version: int, target: OpenDocument, edit: NextEdit):
        key = rejection_key(target.text, TextEdit(edit.start, edit.end, edit.text))
        suggestion = Suggestion(f"nes-{next(self._ids)}", target.uri, target.version, edit, key, doc.uri, version)
        self.current[doc.uri] = suggestion
        self._remember(suggestion)
        self.counters["suggested_workspace"] += 1
        self.records.append({"ms": 0.0, "forwards": 0, "source": "rule", "rule": WORKSPACE_RULE})
        del self.records[:-2000]
        return suggestion, f"rule {WORKSPACE_RULE}"

    async def _open_model(self) -> ModelCall | None:
        """The model call, opened beyond the suggestion's timeout: a worker still starting when the
        suggestion gives up goes on starting (the next request finds it), it is not cancelled."""
        return await asyncio.shield(self._call())

    async def _call(self) -> ModelCall | None:
        """The model call, or None (rules alone) when the model is unavailable; the reason is kept."""
        try:
            call = await self.model_call() if self.model_call is not None else None
        except ModelUnavailable as exc:
            self.model_error = str(exc)
            return None
        self.model_error = None
        return call

    def _settle(self, doc: OpenDocument, version: int, outcome: NextEditOutcome) -> tuple[Suggestion | None, str]:
        self.records.append({**outcome.stats, "source": outcome.edit.source if outcome.edit else "none"})
        del self.records[:-2000]
        if doc.version != version:
            return None, "the document changed while the suggestion was computed"
        if outcome.edit is None:
            self.counters["none"] += 1
            return None, outcome.reason
        edit = outcome.edit
        key = rejection_key(doc.text, TextEdit(edit.start, edit.end, edit.text))
        suggestion = Suggestion(f"nes-{next(self._ids)}", doc.uri, version, edit, key, doc.uri, version)
        self.current[doc.uri] = suggestion
        self._remember(suggestion)
        self.counters[f"suggested_{outcome.edit.source}"] += 1
        return suggestion, outcome.reason

    # -- what clients say about a suggestion -------------------------------------------------------
    def find(self, suggestion_id: str) -> Suggestion | None:
        return self.recent.get(suggestion_id)

    def shown(self, suggestion_id: str) -> bool:
        s = self.find(suggestion_id)
        if s is None or s.shown:
            return s is not None
        s.shown = True
        self.counters["shown"] += 1
        return True

    def accepted(self, suggestion_id: str) -> bool:
        s = self.find(suggestion_id)
        if s is None or s.outcome:
            return s is not None and s.outcome == "accepted"
        s.outcome = "accepted"
        self.counters["accepted"] += 1
        return True

    def rejected_by_user(self, suggestion_id: str) -> bool:
        """The user dismissed it: the same change is not offered again for that document."""
        s = self.find(suggestion_id)
        if s is None or s.outcome:
            return s is not None and s.outcome == "rejected"
        s.outcome = "rejected"
        self.counters["rejected"] += 1
        pairs = self.rejected.setdefault(s.uri, OrderedDict())
        pairs[s.key] = None
        while len(pairs) > REJECTED:
            pairs.popitem(last=False)
        for origin, held in list(self.current.items()):
            if held is s:
                del self.current[origin]
        return True

    def stats(self) -> dict:
        return {
            "counters": dict(self.counters),
            "records": self.records[-200:],
            "documents": len(self.histories),
            "model_error": self.model_error,
        }
