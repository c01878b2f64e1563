import { test } from 'node:test';
import assert from 'node:assert/strict';
import { elsewhereHint, lensTitle, presentation, requestParams, usable, WireEdit } from '../src/nextEdit';

const edit = (line: number, endLine = line, text = 'size'): WireEdit => ({
  text,
  range: { start: { line, character: 8 }, end: { line: endLine, character: 13 } },
  textDocument: { uri: 'file:///a.py', version: 7 },
  command: { title: 'Accept next edit', command: 'sdls.acceptNextEdit', arguments: ['nes-1'] },
  id: 'nes-1',
});

test('a one-line edit on the cursor line is an inline completion; anything else a decoration', () => {
  assert.equal(presentation(edit(3), 3), 'inline');
  assert.equal(presentation(edit(3), 4), 'decoration');
  assert.equal(presentation(edit(3, 4), 3), 'decoration'); // spans lines: the stable API cannot show it
  assert.equal(presentation(edit(3, 3, 'a\nb'), 3), 'decoration');
});

test('only an edit for this document at this version is used', () => {
  assert.deepEqual(usable({ edits: [edit(1)] }, 'file:///a.py', 7), edit(1));
  assert.equal(usable({ edits: [edit(1)] }, 'file:///a.py', 8), undefined); // the document moved on
  assert.equal(usable({ edits: [edit(1)] }, 'file:///b.py', 7), undefined);
  assert.equal(usable({ edits: [], reason: 'no edit' }, 'file:///a.py', 7), undefined);
  assert.equal(usable(null, 'file:///a.py', 7), undefined);
});

test('an edit of another document is used only while that document is open here at its version', () => {
  const versions: Record<string, number> = { 'file:///a.py': 7 };
  const at = (uri: string) => versions[uri];
  assert.deepEqual(usable({ edits: [edit(1)] }, 'file:///main.py', 3, at), edit(1)); // a.py is at 7
  versions['file:///a.py'] = 8;
  assert.equal(usable({ edits: [edit(1)] }, 'file:///main.py', 3, at), undefined); // a.py moved on
  delete versions['file:///a.py'];
  assert.equal(usable({ edits: [edit(1)] }, 'file:///main.py', 3, at), undefined); // not open here
  assert.equal(usable({ edits: [edit(1)] }, 'file:///main.py', 7), undefined); // no way to tell: nothing
  assert.match(elsewhereHint(edit(1)), /next edit in a\.py → "size" \(Tab/);
});

test('request params and the lens label', () => {
  assert.deepEqual(requestParams('file:///a.py', 7, { line: 1, character: 2 }), {
    textDocument: { uri: 'file:///a.py', version: 7 },
    position: { line: 1, character: 2 },
    context: { triggerKind: 2 },
  });
  assert.match(lensTitle(edit(1)), /^sdls: next edit → "size" \(Tab/);
  assert.match(lensTitle(edit(1, 1, '')), /→ delete/);
});
