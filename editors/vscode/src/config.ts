// Pure helpers that turn the `sdls.*` settings into what the language client needs.
// No `vscode` import here, so the tests run without an editor.

/** The part of vscode.WorkspaceConfiguration these helpers read. */
export interface Section {
  get<T>(key: string): T | undefined;
}

/** Top-level keys of the server's settings (sdls/lsp/settings.py); everything else is client-only. */
export const SERVER_KEYS = ['model', 'completion', 'actions', 'hover', 'nextEdit', 'diagnostics', 'worker', 'languages', 'maxDocumentChars'];

/**
 * Settings the server takes only when it starts (STARTUP_ONLY in sdls/lsp/settings.py: it refuses a
 * change sent later, since a workspace can send one), plus the client's own start-up settings: a
 * change to any of them restarts the server. All have machine scope in package.json.
 */
export const RESTART_SETTINGS = ['pythonPath', 'languages', 'model.path', 'model.url', 'model.token', 'model.tokenFile', 'model.id', 'worker.socket'];

/** Does a configuration change need a new server (rather than a didChangeConfiguration)? */
export function needsRestart(event: { affectsConfiguration(section: string): boolean }): boolean {
  return RESTART_SETTINGS.some((key) => event.affectsConfiguration(`sdls.${key}`));
}

/** Languages the extension activates on; the selector when the server serves every language ("*"). */
export const DEFAULT_LANGUAGES = ['python', 'javascript', 'typescript', 'rust', 'go', 'lua'];

/** The settings object the server reads from initializationOptions and didChangeConfiguration. */
export function serverSettings(section: Section): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const value = section.get<unknown>(key);
    if (value !== undefined) {
      out[key] = value;
    }
  }
  return out;
}

/** How to start the server: `<python> -m sdls serve` over stdio. */
export function serverCommand(pythonPath: string | undefined): { command: string; args: string[] } {
  const python = pythonPath && pythonPath.trim() !== '' ? pythonPath.trim() : 'python3';
  return { command: python, args: ['-m', 'sdls', 'serve'] };
}

/** Documents the client sends to the server: the configured languages, on disk or unsaved. */
export function documentSelector(languages: string[] | undefined): { scheme: string; language: string }[] {
  const wanted = !languages || languages.length === 0 || languages.includes('*') ? DEFAULT_LANGUAGES : languages;
  return wanted.flatMap((language) => [
    { scheme: 'file', language },
    { scheme: 'untitled', language },
  ]);
}
