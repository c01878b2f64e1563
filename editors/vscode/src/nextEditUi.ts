// Next-edit suggestions in the editor, with the stable API only (see nextEdit.ts for the choice).
// After a change settles the server is asked (sdls/nextEdit); the answer is shown as ghost text when it
// is on the cursor's line, else as a decoration with a code lens; Tab (sdls.nextEdit.apply) jumps to it
// and, pressed there, applies it; Esc (sdls.nextEdit.dismiss) dismisses it. The server hears
// sdls/didShowNextEdit, sdls.acceptNextEdit and sdls.rejectNextEdit. Any change drops the suggestion.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { lensTitle, presentation, requestParams, usable, WireEdit } from './nextEdit';

const REQUEST = 'sdls/nextEdit';
const SHOWN = 'sdls/didShowNextEdit';
const CONTEXT_KEY = 'sdls.nextEditVisible';
const DEBOUNCE_MS = 300;

interface Current {
  edit: WireEdit;
  uri: string;
  version: number;
}

export function registerNextEdits(context: vscode.ExtensionContext, client: () => LanguageClient | undefined, isEnabled: () => boolean): void {
  let current: Current | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let seq = 0;
  const lensChanged = new vscode.EventEmitter<void>();
  const deleted = vscode.window.createTextEditorDecorationType({ textDecoration: 'line-through', backgroundColor: new vscode.ThemeColor('diffEditor.removedTextBackground') });
  const added = vscode.window.createTextEditorDecorationType({ after: { color: new vscode.ThemeColor('editorGhostText.foreground'), backgroundColor: new vscode.ThemeColor('diffEditor.insertedTextBackground') } });

  const range = (e: WireEdit) => new vscode.Range(e.range.start.line, e.range.start.character, e.range.end.line, e.range.end.character);
  const clear = () => {
    current = undefined;
    for (const editor of vscode.window.visibleTextEditors) {
      editor.setDecorations(deleted, []);
      editor.setDecorations(added, []);
    }
    void vscode.commands.executeCommand('setContext', CONTEXT_KEY, false);
    lensChanged.fire();
  };
  const show = (editor: vscode.TextEditor, edit: WireEdit) => {
    current = { edit, uri: editor.document.uri.toString(), version: editor.document.version };
    const r = range(edit);
    editor.setDecorations(deleted, [r]);
    editor.setDecorations(added, [{ range: new vscode.Range(r.end, r.end), renderOptions: { after: { contentText: edit.text.replace(/\n/g, '⏎') } } }]);
    void vscode.commands.executeCommand('setContext', CONTEXT_KEY, true);
    lensChanged.fire();
    void client()?.sendNotification(SHOWN, { id: edit.id });
    if (presentation(edit, editor.selection.active.line) === 'inline') {
      void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    }
  };
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
      const edit = usable(result, doc.uri.toString(), doc.version === version ? version : -1);
      if (mine === seq && edit && vscode.window.activeTextEditor === editor) {
        show(editor, edit);
      }
    } catch {
      // a failed or cancelled request shows nothing
    }
  };
  const apply = async () => {
    const editor = vscode.window.activeTextEditor;
    const cur = current;
    if (!editor || !cur || editor.document.uri.toString() !== cur.uri || editor.document.version !== cur.version) {
      clear();
      return;
    }
    const r = range(cur.edit);
    if (editor.selection.active.line !== r.start.line && presentation(cur.edit, editor.selection.active.line) !== 'inline') {
      editor.selection = new vscode.Selection(r.start, r.start); // first press: jump there
      editor.revealRange(r);
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
    lensChanged,
    vscode.commands.registerCommand('sdls.nextEdit.apply', apply),
    vscode.commands.registerCommand('sdls.nextEdit.dismiss', dismiss),
    vscode.commands.registerCommand('sdls.nextEdit.request', () => {
      const editor = vscode.window.activeTextEditor;
      return editor ? ask(editor) : undefined;
    }),
    vscode.workspace.onDidChangeTextDocument((event) => {
      if (current && event.document.uri.toString() === current.uri) {
        clear(); // the suggestion was for a version that is gone
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
