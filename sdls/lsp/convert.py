"""Core results -> LSP types, and the typed payloads a client echoes back (code action data, command
arguments), all through lsprotocol's converter. The handlers build every LSP value here."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, TypeVar

import cattrs
from lsprotocol import types as lsp
from lsprotocol.converters import get_converter

from sdls.syntax import SyntaxIssue
from sdls_model.jobs import TextEdit

from .actions import Offer
from .completion import InlineResult
from .documents import OpenDocument
from .fixups import FixUp

APPLY_FIX = "sdls.applyFix"  # the command a hover's "Apply fix-up" link runs
T = TypeVar("T")
_converter = get_converter()


@dataclass(frozen=True)
class OfferData:
    """A code action's `data`: the offer and the document version and text digest it was made for
    (echoed to resolve it; the server checks all of it, see actions.offer_problem)."""

    uri: str
    version: int
    digest: str
    offer: Offer


@dataclass(frozen=True)
class FixArguments:
    """The argument of the sdls.applyFix command: edits for one version (and text digest) of one document."""

    uri: str
    version: int
    digest: str
    edits: list[lsp.TextEdit]


def to_json(value: Any) -> Any:
    """`value` (an LSP type or a payload above) as plain JSON data, with LSP's camelCase keys."""
    return _converter.unstructure(value)


class BadPayload(ValueError):
    """A payload the client echoed back is not one sdls made (answered InvalidParams)."""


def from_json(data: Any, kind: type[T], what: str) -> T:
    """`data` a client sent back, as `kind`; BadPayload naming every field that does not fit."""
    try:
        return _converter.structure(data, kind)
    except cattrs.BaseValidationError as exc:
        raise BadPayload(f"{what}: {'; '.join(cattrs.transform_error(exc))}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise BadPayload(f"{what}: {exc}") from None


def lsp_range(doc: OpenDocument, start: int, end: int) -> lsp.Range:
    (sl, sc), (el, ec) = doc.position(start), doc.position(end)
    return lsp.Range(lsp.Position(sl, sc), lsp.Position(el, ec))


def text_edits(doc: OpenDocument, edits: list[TextEdit]) -> list[lsp.TextEdit]:
    return [lsp.TextEdit(range=lsp_range(doc, e.start, e.end), new_text=e.new_text) for e in edits]


def inline_completions(doc: OpenDocument, result: InlineResult | None) -> lsp.InlineCompletionList:
    if result is None:
        return lsp.InlineCompletionList(items=[])
    item = lsp.InlineCompletionItem(insert_text=result.text, range=lsp_range(doc, result.start, result.end))
    return lsp.InlineCompletionList(items=[item])


def versioned_edit(doc: OpenDocument, version: int, edits: list[lsp.TextEdit]) -> lsp.WorkspaceEdit:
    """A WorkspaceEdit the editor applies only if the document is still at `version`."""
    return lsp.WorkspaceEdit(
        document_changes=[
            lsp.TextDocumentEdit(
                text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=doc.uri, version=version), edits=edits
            )
        ]
    )


def diagnostic(doc: OpenDocument, issue: SyntaxIssue) -> lsp.Diagnostic:
    end = issue.end if issue.end > issue.start else min(len(doc.text), issue.start + 1)
    if end > issue.start and doc.text[issue.start : end] == "\n":
        end = issue.start  # a zero-width mark at the end of a line, not one spilling onto the next
    return lsp.Diagnostic(
        range=lsp_range(doc, issue.start, end),
        message=issue.message,
        severity=lsp.DiagnosticSeverity.Error,
        source="sdls",
        code="missing" if issue.kind == "missing" else "syntax",
    )


def content_change(change: lsp.TextDocumentContentChangeEvent) -> tuple[tuple[int, int, int, int] | None, str]:
    """A didChange entry as DocumentStore.change takes it: ((start line, col, end line, col) | None, text)."""
    rng = getattr(change, "range", None)
    return ((rng.start.line, rng.start.character, rng.end.line, rng.end.character) if rng else None), change.text


def code_action(doc: OpenDocument, offer: Offer, diagnostics: list[lsp.Diagnostic]) -> lsp.CodeAction:
    """The unresolved action for an offer (the edit comes with codeAction/resolve, which gets the
    offer back as `data`); it names the editor's sdls diagnostics on the line of the error it fixes."""
    fixes = [
        d
        for d in diagnostics
        if offer.issue and d.source == "sdls" and d.range.start.line == doc.position(offer.issue.start)[0]
    ]
    return lsp.CodeAction(
        title=offer.title,
        kind=offer.kind,
        data=to_json(OfferData(doc.uri, doc.version, doc.digest, offer)),
        diagnostics=fixes or None,
        is_preferred=True if offer.issue else None,
    )


def hover(doc: OpenDocument, version: int, fix: FixUp) -> lsp.Hover:
    """The fix-up as markdown: the problem, the diff, and a command link that applies exactly these
    edits (to `doc` at `version`, its current text)."""
    lines = [f"**sdls** — {fix.problem}"]
    if fix.edits:
        args = FixArguments(doc.uri, version, doc.digest, text_edits(doc, fix.edits))
        link = urllib.parse.quote(json.dumps([to_json(args)]))
        lines += [
            "",
            "```diff",
            fix.diff,
            "```",
            "",
            f'[Apply fix-up](command:{APPLY_FIX}?{link} "Apply the proposed repair")',
        ]
    else:
        lines.append(f"\n_No fix-up: {fix.reason}_")
    markdown = lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value="\n".join(lines))
    return lsp.Hover(contents=markdown, range=lsp_range(doc, fix.start, fix.end))
