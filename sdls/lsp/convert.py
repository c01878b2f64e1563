"""Core results -> LSP types. The handlers build LSP results here, from plain core values."""

from __future__ import annotations

from lsprotocol import types as lsp

from sdls.syntax import SyntaxIssue
from sdls_model.jobs import TextEdit

from .actions import Offer
from .documents import OpenDocument


def lsp_range(doc: OpenDocument, start: int, end: int) -> lsp.Range:
    (sl, sc), (el, ec) = doc.position(start), doc.position(end)
    return lsp.Range(lsp.Position(sl, sc), lsp.Position(el, ec))


def text_edits(doc: OpenDocument, edits: list[TextEdit]) -> list[lsp.TextEdit]:
    return [lsp.TextEdit(range=lsp_range(doc, e.start, e.end), new_text=e.new_text) for e in edits]


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


def code_action(doc: OpenDocument, offer: Offer, data: object, diagnostics: list[lsp.Diagnostic]) -> lsp.CodeAction:
    """The unresolved action for an offer (the edit comes with codeAction/resolve); it names the
    editor's sdls diagnostics on the line of the error it fixes."""
    fixes = [
        d
        for d in diagnostics
        if offer.issue and d.source == "sdls" and d.range.start.line == doc.position(offer.issue.start)[0]
    ]
    return lsp.CodeAction(
        title=offer.title,
        kind=offer.kind,
        data=data,
        diagnostics=fixes or None,
        is_preferred=True if offer.issue else None,
    )
