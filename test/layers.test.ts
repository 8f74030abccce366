/**
 * The layer rule (eslint.layers.js) and the import-circle check (scripts/check-import-cycles.ts):
 * each fails on a planted violation, and the tree as it is has none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Linter } from 'eslint';
import { layersPlugin } from '../eslint.layers.js';
import { findCycles } from '../scripts/check-import-cycles.js';

const root = path.resolve(import.meta.dirname, '..');

function lint(file: string, code: string): string[] {
  const linter = new Linter({ configType: 'flat' });
  return linter
    .verify(
      code,
      [{ files: ['**/*.ts'], plugins: { remora: layersPlugin }, rules: { 'remora/layers': 'error' } }],
      path.join(root, file),
    )
    .map((m) => m.message);
}

test('a lower layer importing a higher one is an error; downward and same-folder imports are fine', () => {
  assert.match(
    lint('src/core/x.ts', "import { a } from '../jobs/catalog.js';")[0] ?? '',
    /layer 'core' may not import from 'jobs'/,
  );
  assert.match(
    lint('src/pipeline/x.ts', "export { a } from '../jobs/catalog.js';")[0] ?? '',
    /'pipeline' may not import from 'jobs'/,
  );
  assert.match(
    lint('src/dumps/x.ts', "const m = import('../pipeline/job.js');")[0] ?? '',
    /'dumps' may not import/,
  );
  assert.match(
    lint('src/cli/x.ts', "import { a } from '../web/server.js';")[0] ?? '',
    /'cli' may not import from 'web'/,
  );
  assert.match(
    lint('src/newthing/x.ts', "import { a } from '../core/days.js';")[0] ?? '',
    /not a known layer/,
  );
  assert.deepEqual(
    lint('src/jobs/gc/x.ts', "import { a } from '../../pipeline/job.js'; import { b } from './y.js';"),
    [],
  );
  assert.deepEqual(
    lint('test/x.ts', "import { a } from '../src/main/cli.js';"),
    [],
    'tests may import anything',
  );
});

test('the circle finder finds a planted circle and nothing else', () => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a', 'd']],
    ['d', []],
  ]);
  assert.deepEqual(findCycles(g), [['a', 'b', 'c', 'a']]);
  g.set('c', ['d']);
  assert.deepEqual(findCycles(g), []);
});
