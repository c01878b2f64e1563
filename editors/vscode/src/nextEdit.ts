// Next-edit suggestions (sdls/nextEdit), the parts without `vscode`: the wire shape, where a
// suggestion is shown, and whether it still fits the document.
//
// VS Code's stable API shows ghost text only on the cursor's line (an InlineCompletionItem's range
// must begin and end on one line), so a suggestion on the cursor's line is offered as an inline
// completion whose range covers the changed text; one elsewhere is a decoration (old text struck out,
// new text after it) with a code lens above it and the sdls.nextEdit.apply command (Tab) to jump there
// and apply it. Either way the edit is bound to the document version it was made for.

export interface Position {
  line: number;
  character: number;
}

export interface WireEdit {
  text: string;
  range: { start: Position; end: Position };
  textDocument: { uri: string; version: number };
  command?: { title: string; command: string; arguments?: unknown[] };
  id?: string;
  source?: string;
}

export interface WireResult {
  edits?: WireEdit[];
  reason?: string;
}

/** How to show a suggestion with the cursor on `cursorLine`. */
export function presentation(edit: WireEdit, cursorLine: number): 'inline' | 'decoration' {
  const { start, end } = edit.range;
  return start.line === end.line && start.line === cursorLine && !edit.text.includes('\n') ? 'inline' : 'decoration';
}

/** The first edit of an answer if it is for this document at this version (else nothing to show). */
export function usable(result: WireResult | null | undefined, uri: string, version: number): WireEdit | undefined {
  const edit = result?.edits?.[0];
  if (!edit || edit.textDocument.uri !== uri || edit.textDocument.version !== version) {
    return undefined;
  }
  return edit;
}

/** The request params, as copilot-lsp and sidekick send them for textDocument/copilotInlineEdit. */
export function requestParams(uri: string, version: number, position: Position) {
  return { textDocument: { uri, version }, position, context: { triggerKind: 2 } };
}

/** The label on the code lens above a suggestion elsewhere. */
export function lensTitle(edit: WireEdit): string {
  const first = edit.text.split('\n')[0];
  const shown = first.length > 40 ? `${first.slice(0, 40)}…` : first;
  return `sdls: next edit → ${shown === '' ? 'delete' : JSON.stringify(shown)} (Tab to jump and apply, Esc to dismiss)`;
}
