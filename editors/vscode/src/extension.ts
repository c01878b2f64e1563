// The sdls extension: start `sdls serve` through vscode-languageclient, keep a status-bar item,
// and offer restart / toggle / show-log commands. All completion logic lives in the server.
import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';
import { documentSelector, serverCommand, serverSettings } from './config';
import { inlineCompletionMiddleware, Toggle } from './middleware';
import { fromServerStatus, StatusState, statusText } from './status';

const STATUS_COMMAND = 'sdls.status';
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

  const start = async () => {
    const cfg = vscode.workspace.getConfiguration('sdls');
    client = new LanguageClient('sdls', 'sdls', serverCommand(cfg.get<string>('pythonPath')), {
      documentSelector: documentSelector(cfg.get<string[]>('languages')),
      initializationOptions: serverSettings(cfg),
      outputChannel: output,
      middleware: inlineCompletionMiddleware(toggle, (ms) => show({ latencyMs: ms })),
    });
    show({ running: false, error: undefined });
    try {
      await client.start();
      show({ running: true, ...(await askStatus(client)) });
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
      if (event.affectsConfiguration('sdls.pythonPath') || event.affectsConfiguration('sdls.languages')) {
        await vscode.commands.executeCommand('sdls.restart');
      } else if (event.affectsConfiguration('sdls') && client?.isRunning()) {
        await client.sendNotification('workspace/didChangeConfiguration', { settings: serverSettings(vscode.workspace.getConfiguration('sdls')) });
        show(await askStatus(client));
      }
    }),
  );
  await start();
}

/** The server's own account of model, device and tokens per forward, if it offers one. */
async function askStatus(c: LanguageClient): Promise<Partial<StatusState>> {
  const commands = c.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
  if (!commands.includes(STATUS_COMMAND)) {
    return {};
  }
  try {
    return fromServerStatus(await c.sendRequest('workspace/executeCommand', { command: STATUS_COMMAND, arguments: [] }));
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
