// The sdls extension: start `sdls serve` through vscode-languageclient, keep a status-bar item,
// and offer restart / toggle / show-log commands. All completion logic lives in the server.
import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';
import { documentSelector, needsRestart, serverCommand, serverSettings } from './config';
import { inlineCompletionMiddleware, Toggle } from './middleware';
import { registerNextEdits } from './nextEditUi';
import { fromServerStats, StatusState, statusText } from './status';

const STATS_REQUEST = 'sdls/stats';
const APPLY_FIX = 'sdls.applyFix';
const STATS_EVERY_MS = 2000;
let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('sdls', { log: true });
  const item = vscode.window.createStatusBarItem('sdls.status', vscode.StatusBarAlignment.Right, 100);
  const toggle: Toggle = { enabled: true };
  const state: StatusState = { running: false, enabled: true };
  const show = (change: Partial<StatusState>) => {
    Object.assign(state, change);
    Object.assign(item, statusText(state));
    item.command = state.error ? 'sdls.showLog' : 'sdls.toggle';
    item.show();
  };

  // The model loads on the first completion; ask the server again after completions, not too often.
  let lastStats = 0;
  const refreshStats = async () => {
    if (client?.isRunning() && Date.now() - lastStats >= STATS_EVERY_MS) {
      lastStats = Date.now();
      show(await askStats(client));
    }
  };

  const start = async () => {
    const cfg = vscode.workspace.getConfiguration('sdls');
    client = new LanguageClient('sdls', 'sdls', serverCommand(cfg.get<string>('pythonPath')), {
      documentSelector: documentSelector(cfg.get<string[]>('languages')),
      initializationOptions: serverSettings(cfg),
      outputChannel: output,
      // Hover fix-ups end in a command link; only the server's own fix command may run from it.
      markdown: { isTrusted: { enabledCommands: [APPLY_FIX] } },
      middleware: inlineCompletionMiddleware(toggle, (ms) => {
        show({ latencyMs: ms });
        void refreshStats();
      }),
    });
    show({ running: false, error: undefined });
    try {
      await client.start();
      show({ running: true, ...(await askStats(client)) });
    } catch (err) {
      show({ error: `the server did not start: ${err instanceof Error ? err.message : String(err)}` });
    }
  };

  context.subscriptions.push(
    output,
    item,
    vscode.commands.registerCommand('sdls.restart', async () => {
      await stopClient();
      await start();
    }),
    vscode.commands.registerCommand('sdls.toggle', () => {
      toggle.enabled = !toggle.enabled;
      show({ enabled: toggle.enabled });
    }),
    vscode.commands.registerCommand('sdls.showLog', () => output.show()),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (needsRestart(event)) {
        await vscode.commands.executeCommand('sdls.restart');
      } else if (event.affectsConfiguration('sdls') && client?.isRunning()) {
        await client.sendNotification('workspace/didChangeConfiguration', { settings: serverSettings(vscode.workspace.getConfiguration('sdls')) });
        show(await askStats(client));
      }
    }),
  );
  registerNextEdits(context, () => client, () => vscode.workspace.getConfiguration('sdls').get<boolean>('nextEdit.enabled') !== false);
  await start();
}

/** The server's own account of model, device and tokens per forward (empty if it cannot tell). */
async function askStats(c: LanguageClient): Promise<Partial<StatusState>> {
  try {
    const got = fromServerStats(await c.sendRequest(STATS_REQUEST, {}));
    // Keep what is already shown when the server does not know yet (model not loaded).
    return Object.fromEntries(Object.entries(got).filter(([, v]) => v !== undefined));
  } catch {
    return {};
  }
}

async function stopClient(): Promise<void> {
  const running = client;
  client = undefined;
  if (running) {
    await running.stop();
  }
}

export function deactivate(): Promise<void> {
  return stopClient();
}
