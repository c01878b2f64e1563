// A stand-in for vscode-languageclient/node's LanguageClient that records how it was built and used.
export const clients: FakeLanguageClient[] = [];

export class FakeLanguageClient {
  started = false;
  stopped = false;
  notifications: { method: string; params: unknown }[] = [];
  requests: { method: string; params: unknown }[] = [];
  static statsAnswer: unknown = { worker_info: { model: { model: '/models/tiny-dlm', device: 'cpu' } }, latencies: [{ ms: 80, forwards: 4, tokens: 10 }] };
  static failStart = false;

  constructor(
    public id: string,
    public name: string,
    public serverOptions: { command: string; args: string[] },
    public clientOptions: Record<string, any>,
  ) {
    clients.push(this);
  }
  async start(): Promise<void> {
    if (FakeLanguageClient.failStart) {
      throw new Error('spawn python3 ENOENT');
    }
    this.started = true;
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
  isRunning(): boolean {
    return this.started && !this.stopped;
  }
  async sendRequest(method: string, params: unknown): Promise<unknown> {
    this.requests.push({ method, params });
    return FakeLanguageClient.statsAnswer;
  }
  async sendNotification(method: string, params: unknown): Promise<void> {
    this.notifications.push({ method, params });
  }
}

export { FakeLanguageClient as LanguageClient };
