// Next-edit suggestions in the editor, with the stable API only (see nextEdit.ts for the choice).
// After a change settles the server is asked (sdls/nextEdit); the answer is shown as ghost text when it
// is on the cursor's line, else as a decoration with a code lens; Tab (sdls.nextEdit.apply) jumps to it
// and, pressed there, applies it; Esc (sdls.nextEdit.dismiss) dismisses it. The server hears
// sdls/didShowNextEdit, sdls.acceptNextEdit and sdls.rejectNextEdit. Any change drops the suggestion.
// Two context keys drive Tab (package.json): sdls.nextEditVisible (one is shown) and
// sdls.nextEditAtCursor (the cursor is on its line, where Tab applies it even though VS Code may show
// the same edit as an inline suggestion there: it is ours, and VS Code's Tab would indent instead).
// A cross-file edit (another open document) is hinted at the cursor; Tab opens that file at it.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { elsewhereHint, lensTitle, presentation, requestParams, usable, WireEdit } from './nextEdit';

const REQUEST = 'sdls/nextEdit';
const SHOWN = 'sdls/didShowNextEdit';
const CONTEXT_KEY = 'sdls.nextEditVisible';
const AT_CURSOR_KEY = 'sdls.nextEditAtCursor';
const DEBOUNCE_MS = 300;

interface Current {
  edit: WireEdit;
  uri: string; // the document the edit applies to, at `version`
  version: number;
  origin: string; // the document it was asked for, at `originVersion` (the same one unless cross-file)
  originVersion: number;
}

export function registerNextEdits(context: vscode.ExtensionContext, client: () => LanguageClient | undefined, isEnabled: () => boolean): void {
  let current: Current | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let seq = 0;
  const lensChanged = new vscode.EventEmitter<void>();
  const deleted = vscode.window.createTextEditorDecorationType({ textDecoration: 'line-through', backgroundColor: new vscode.ThemeColor('diffEditor.removedTextBackground') });
  const added = vscode.window.createTextEditorDecorationType({ after: { color: new vscode.ThemeColor('editorGhostText.foreground'), backgroundColor: new vscode.ThemeColor('diffEditor.insertedTextBackground') } });
  const hint = vscode.window.createTextEditorDecorationType({ after: { color: new vscode.ThemeColor('editorCodeLens.foreground') } });
  let atCursor = false;

  const range = (e: WireEdit) => new vscode.Range(e.range.start.line, e.range.start.character, e.range.end.line, e.range.end.character);
  const clear = () => {
    current = undefined;
    for (const editor of vscode.window.visibleTextEditors) {
      editor.setDecorations(deleted, []);
      editor.setDecorations(added, []);
      editor.setDecorations(hint, []);
    }
    void vscode.commands.executeCommand('setContext', CONTEXT_KEY, false);
    updateAtCursor();
    lensChanged.fire();
  };
  const isTarget = (editor: vscode.TextEditor | undefined) => !!editor && !!current && editor.document.uri.toString() === current.uri && editor.document.version === current.version;
  /** Is the cursor on the suggestion's first line (Tab applies it there)? Kept in AT_CURSOR_KEY. */
  const updateAtCursor = () => {
    const editor = vscode.window.activeTextEditor;
    const now = !!current && isTarget(editor) && editor!.selection.active.line === current.edit.range.start.line;
    if (now !== atCursor) {
      atCursor = now;
      void vscode.commands.executeCommand('setContext', AT_CURSOR_KEY, now);
    }
  };
  /** The struck-out old text and the new text beside it, in every editor of the target document. */
  const decorate = () => {
    if (!current) {
      return;
    }
    const r = range(current.edit);
    const text = current.edit.text.replace(/\n/g, '⏎');
    for (const editor of vscode.window.visibleTextEditors.filter(isTarget)) {
      editor.setDecorations(deleted, [r]);
      editor.setDecorations(added, [{ range: new vscode.Range(r.end, r.end), renderOptions: { after: { contentText: text } } }]);
    }
  };
  const show = (editor: vscode.TextEditor, edit: WireEdit, originVersion: number) => {
    const origin = editor.document.uri.toString();
    current = { edit, uri: edit.textDocument.uri, version: edit.textDocument.version, origin, originVersion };
    decorate();
    if (current.uri !== origin) {
      const line = editor.selection.active.line;
      const end = editor.document.lineAt(line).range.end;
      editor.setDecorations(hint, [{ range: new vscode.Range(end, end), renderOptions: { after: { contentText: elsewhereHint(edit) } } }]);
    }
    void vscode.commands.executeCommand('setContext', CONTEXT_KEY, true);
    updateAtCursor();
    lensChanged.fire();
    void client()?.sendNotification(SHOWN, { id: edit.id });
    if (current.uri === origin && presentation(edit, editor.selection.active.line) === 'inline') {
      void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    }
  };
  const versionOf = (uri: string) => vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri)?.version;
  const ask = async (editor: vscode.TextEditor) => {
    const c = client();
    if (!c?.isRunning() || !isEnabled()) {
      return;
    }
    const mine = ++seq;
    const doc = editor.document;
    const version = doc.version;
    const pos = editor.selection.active;
    try {
      const result = await c.sendRequest<{ edits?: WireEdit[]; reason?: string }>(REQUEST, requestParams(doc.uri.toString(), version, { line: pos.line, character: pos.character }));
      const edit = doc.version === version ? usable(result, doc.uri.toString(), version, versionOf) : undefined;
      if (mine === seq && edit && vscode.window.activeTextEditor === editor) {
        show(editor, edit, version);
      }
    } catch {
      // a failed or cancelled request shows nothing
    }
  };
  const apply = async () => {
    const editor = vscode.window.activeTextEditor;
    const cur = current;
    if (!editor || !cur || versionOf(cur.uri) !== cur.version || versionOf(cur.origin) !== cur.originVersion) {
      clear();
      return;
    }
    const r = range(cur.edit);
    if (!isTarget(editor)) {
      // a cross-file edit: first press opens its document there (the next press applies it)
      const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === cur.uri);
      if (doc) {
        await vscode.window.showTextDocument(doc, { selection: new vscode.Range(r.start, r.start) });
        decorate();
        updateAtCursor();
      }
      return;
    }
    if (editor.selection.active.line !== r.start.line) {
      editor.selection = new vscode.Selection(r.start, r.start); // first press: jump there
      editor.revealRange(r);
      updateAtCursor();
      return;
    }
    clear();
    const change = new vscode.WorkspaceEdit();
    change.replace(editor.document.uri, r, cur.edit.text);
    if (await vscode.workspace.applyEdit(change)) {
      const cmd = cur.edit.command;
      if (cmd) {
        void client()?.sendRequest('workspace/executeCommand', { command: cmd.command, arguments: cmd.arguments ?? [] });
      }
    }
  };
  const dismiss = () => {
    const cur = current;
    clear();
    if (cur?.edit.id) {
      void client()?.sendRequest('workspace/executeCommand', { command: 'sdls.rejectNextEdit', arguments: [cur.edit.id] });
    }
  };

  context.subscriptions.push(
    deleted,
    added,
    hint,
    lensChanged,
    vscode.commands.registerCommand('sdls.nextEdit.apply', apply),
    vscode.commands.registerCommand('sdls.nextEdit.dismiss', dismiss),
    vscode.commands.registerCommand('sdls.nextEdit.request', () => {
      const editor = vscode.window.activeTextEditor;
      return editor ? ask(editor) : undefined;
    }),
    vscode.window.onDidChangeTextEditorSelection(() => updateAtCursor()),
    vscode.window.onDidChangeActiveTextEditor(() => updateAtCursor()),
    vscode.window.onDidChangeVisibleTextEditors(() => decorate()),
    vscode.workspace.onDidChangeTextDocument((event) => {
      const uri = event.document.uri.toString();
      if (current && (uri === current.uri || uri === current.origin) && event.contentChanges.length > 0) {
        clear(); // the suggestion was for a version that is gone
      }
      // Only the user's edits in the editor they type in ask again: an output channel (the server's
      // own log is one) changes all the time, and must neither ask nor make an answer look stale.
      const active = vscode.window.activeTextEditor;
      if (event.contentChanges.length === 0 || !active || event.document !== active.document) {
        return;
      }
      if (timer) {
        clearTimeout(timer);
      }
      seq++;
      timer = setTimeout(() => {
        const editor = vscode.window.activeTextEditor;
        if (editor && editor.document === event.document) {
          void ask(editor);
        }
      }, DEBOUNCE_MS);
    }),
    vscode.languages.registerCodeLensProvider({ scheme: 'file' }, {
      onDidChangeCodeLenses: lensChanged.event,
      provideCodeLenses(document) {
        if (!current || document.uri.toString() !== current.uri || document.version !== current.version) {
          return [];
        }
        return [new vscode.CodeLens(range(current.edit), { title: lensTitle(current.edit), command: 'sdls.nextEdit.apply' })];
      },
    }),
    vscode.languages.registerInlineCompletionItemProvider({ scheme: 'file' }, {
      provideInlineCompletionItems(document, position) {
        const cur = current;
        if (!cur || document.uri.toString() !== cur.uri || document.version !== cur.version || presentation(cur.edit, position.line) !== 'inline') {
          return [];
        }
        const item = new vscode.InlineCompletionItem(cur.edit.text, range(cur.edit), { title: 'Accept next edit', command: 'sdls.nextEdit.accepted', arguments: [cur.edit.command] });
        return [item];
      },
    }),
    vscode.commands.registerCommand('sdls.nextEdit.accepted', (cmd?: WireEdit['command']) => {
      // VS Code inserted the inline completion itself; tell the server as sdls.nextEdit.apply would.
      clear();
      if (cmd) {
        void client()?.sendRequest('workspace/executeCommand', { command: cmd.command, arguments: cmd.arguments ?? [] });
      }
    }),
  );
}
