// Import first in every test that loads extension code: `vscode` and the language client resolve
// to the mocks in test/mock (the real `vscode` module only exists inside the editor).
import Module = require('module');
import * as path from 'path';

const mocks: Record<string, string> = {
  vscode: path.join(__dirname, 'mock', 'vscode.js'),
  'vscode-languageclient/node': path.join(__dirname, 'mock', 'languageclient.js'),
};
const original = (Module as any)._resolveFilename;
(Module as any)._resolveFilename = function (request: string, ...rest: unknown[]) {
  return request in mocks ? mocks[request] : original.call(this, request, ...rest);
};
