// Next-edit suggestions (sdls/nextEdit), the parts without `vscode`: the wire shape, where a
// suggestion is shown, and whether it still fits the document.
//
// VS Code's stable API shows ghost text only on the cursor's line (an InlineCompletionItem's range
// must begin and end on one line), so a suggestion on the cursor's line is offered as an inline
// completion whose range covers the changed text; one elsewhere is a decoration (old text struck out,
// new text after it) with a code lens above it and the sdls.nextEdit.apply command (Tab) to jump there
// and apply it. Either way the edit is bound to the document version it was made for. A cross-file
// edit (another open document, at its own version) is hinted at the cursor; Tab opens that file at it.

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

/**
 * The first edit of an answer if it still fits: for the asked document (`uri`) at `version`, or for
 * another document (a cross-file edit: the uses of a renamed name in a file that imports it) at the
 * version that document is at now (`versionOf` says; undefined: not open here). Else nothing to show.
 */
export function usable(
  result: WireResult | null | undefined,
  uri: string,
  version: number,
  versionOf: (uri: string) => number | undefined = () => undefined,
): WireEdit | undefined {
  const edit = result?.edits?.[0];
  if (!edit) {
    return undefined;
  }
  const target = edit.textDocument.uri;
  const now = target === uri ? version : versionOf(target);
  return now !== undefined && edit.textDocument.version === now ? edit : undefined;
}

/** The file name of a uri, for a hint that names where a cross-file edit goes. */
export function fileName(uri: string): string {
  const last = uri.split('/').pop() ?? uri;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/** The hint shown at the cursor when the next edit is in another file. */
export function elsewhereHint(edit: WireEdit): string {
  const first = edit.text.split('\n')[0];
  const shown = first.length > 30 ? `${first.slice(0, 30)}…` : first;
  return `  sdls: next edit in ${fileName(edit.textDocument.uri)} → ${JSON.stringify(shown)} (Tab to go there)`;
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
