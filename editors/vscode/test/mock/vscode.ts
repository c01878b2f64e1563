// The slice of the `vscode` API the extension touches, recording what it is asked to do.
type Listener<T> = (e: T) => unknown;

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  event = (listener: Listener<T>) => {
    this.listeners.push(listener);
    return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== listener)) };
  };
  dispose(): void {
    this.listeners = [];
  }
  async fire(e: T): Promise<void> {
    for (const l of this.listeners) {
      await l(e);
    }
  }
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export const recorded = {
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  statusItems: [] as Record<string, unknown>[],
  outputShown: 0,
};

/** Settings under "sdls", as a user would have them (flat dotted keys below the section). */
export const settings = new Map<string, unknown>();
export const configurationChanged = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();

export function reset(): void {
  recorded.commands.clear();
  recorded.statusItems.length = 0;
  recorded.outputShown = 0;
  settings.clear();
  providers.codeLens.length = 0;
  providers.inlineCompletion.length = 0;
}

export class ThemeColor {
  constructor(public id: string) {}
}

export class Position {
  constructor(public line: number, public character: number) {}
}

export class Range {
  start: Position;
  end: Position;
  constructor(a: number | Position, b: number | Position, c?: number, d?: number) {
    this.start = typeof a === 'number' ? new Position(a, b as number) : a;
    this.end = typeof a === 'number' ? new Position(c as number, d as number) : (b as Position);
  }
}

export const providers = { codeLens: [] as unknown[], inlineCompletion: [] as unknown[] };
const disposable = { dispose() {} };

export const languages = {
  registerCodeLensProvider: (_selector: unknown, provider: unknown) => (providers.codeLens.push(provider), disposable),
  registerInlineCompletionItemProvider: (_selector: unknown, provider: unknown) => (providers.inlineCompletion.push(provider), disposable),
};

export const window = {
  visibleTextEditors: [] as unknown[],
  activeTextEditor: undefined as unknown,
  createTextEditorDecorationType: (options: unknown) => ({ options, dispose() {} }),
  onDidChangeTextEditorSelection: () => disposable,
  onDidChangeActiveTextEditor: () => disposable,
  onDidChangeVisibleTextEditors: () => disposable,
  createOutputChannel: (name: string) => ({ name, show: () => recorded.outputShown++, dispose() {}, appendLine() {} }),
  createStatusBarItem: (id: string) => {
    const item: Record<string, unknown> = { id, text: '', tooltip: '', visible: false, dispose() {} };
    item.show = () => (item.visible = true);
    recorded.statusItems.push(item);
    return item;
  },
};

export const commands = {
  registerCommand: (name: string, fn: (...args: unknown[]) => unknown) => {
    if (recorded.commands.has(name)) {
      throw new Error(`command ${name} registered twice`);
    }
    recorded.commands.set(name, fn);
    return { dispose: () => recorded.commands.delete(name) };
  },
  executeCommand: async (name: string, ...args: unknown[]) => {
    if (name === 'setContext') {
      return undefined;
    }
    const fn = recorded.commands.get(name);
    if (!fn) {
      throw new Error(`no command ${name}`);
    }
    return fn(...args);
  },
};

export const workspace = {
  getConfiguration: (section: string) => ({
    get<T>(key: string): T | undefined {
      // Like VS Code: `get("model")` gathers every "model.*" setting into one object.
      const prefix = `${key}.`;
      if (settings.has(key)) {
        return settings.get(key) as T;
      }
      const nested: Record<string, unknown> = {};
      for (const [k, v] of settings) {
        if (k.startsWith(prefix)) {
          nested[k.slice(prefix.length)] = v;
        }
      }
      return (Object.keys(nested).length > 0 ? nested : undefined) as T | undefined;
    },
    section,
  }),
  onDidChangeConfiguration: configurationChanged.event,
  onDidChangeTextDocument: () => disposable,
  textDocuments: [] as unknown[],
};
