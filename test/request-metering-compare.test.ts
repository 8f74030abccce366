/**
 * `remora compare` as a process (RFD 16's side-by-side rollout): Remora's request-metering file
 * for an hour against the original's file of the same shape — exit 0 when they agree, 1 with
 * the differences per account and field when they do not, and the named error for each bad input.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ERROR_CATALOG } from '../src/core/errors.js';
import { defaultObjectStore } from '../src/objectstore/object-store.js';
import { compareReports } from '../src/jobs/metering-kit/compare.js';
import { runCli } from './helpers/cli.js';

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-compare-'));
after(() => fs.rmSync(stateDir, { recursive: true, force: true }));

const remora = (...args: string[]) => runCli(stateDir, args, { env: { REMORA_STATE_DIR: undefined } });
/** `remora compare request-metering --date 2024-03-01 --hour <h> --against <file>`. */
const compareHour = (hour: string, against: string) =>
  remora('compare', 'request-metering', '--date', '2024-03-01', '--hour', hour, '--against', against);

const type = (get: number) => ({
  DELETE: '0',
  GET: String(get),
  HEAD: '1',
  LIST: '0',
  OPTIONS: '0',
  POST: '0',
  PUT: '2',
});
const bw = { in: '100', out: '7', headerIn: '30', headerOut: '20' };
const ours = [
  { owner: 'a-uuid', requests: { type: type(3), bandwidth: bw } },
  { owner: 'b-uuid', requests: { type: type(1), bandwidth: bw } },
];

test('compare: agreeing files exit 0; numbers and decimal strings of the same value agree', async () => {
  const store = defaultObjectStore(stateDir);
  await store.put(
    '/poseidon/stor/usage/request/2024/03/01/05/h05.json',
    `${ours.map((o) => JSON.stringify(o)).join('\n')}\n`,
  );
  // The original's map output had JSON numbers in `type` before deliver-usage turned them into strings.
  const theirs = ours.map((o) => ({
    ...o,
    requests: {
      ...o.requests,
      type: Object.fromEntries(Object.entries(o.requests.type).map(([k, v]) => [k, Number(v)])),
    },
  }));
  const file = path.join(stateDir, 'original-h05.json');
  fs.writeFileSync(
    file,
    `${theirs
      .reverse()
      .map((o) => JSON.stringify(o))
      .join('\n')}\n`,
  );
  const r = await compareHour('5', file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /agrees with/);
});

test('compare: differences per account and field, exit 1 (ReportsDiffer)', async () => {
  const file = path.join(stateDir, 'original-diff.json');
  const theirs = [
    { owner: 'a-uuid', requests: { type: type(4), bandwidth: { ...bw, in: '0' } } }, // the streamed-upload typo
    { owner: 'c-uuid', requests: { type: type(1), bandwidth: bw } },
  ];
  fs.writeFileSync(file, theirs.map((o) => JSON.stringify(o)).join('\n'));
  const r = await compareHour('05', file);
  assert.equal(r.status, ERROR_CATALOG.ReportsDiffer.exit, r.stderr);
  assert.match(r.stderr, /ReportsDiffer: 4 difference\(s\) .* \(3 account\(s\)\)/);
  assert.match(r.stdout, /a-uuid +requests\.bandwidth\.in +100 +0/);
  assert.match(r.stdout, /a-uuid +requests\.type\.GET +3 +4/);
  assert.match(r.stdout, /b-uuid +\(record\) +present +absent/);
  assert.match(r.stdout, /c-uuid +\(record\) +absent +present/);
});

test('compare: bad inputs are named errors with their exit codes; --help', async () => {
  const cases: [string[], keyof typeof ERROR_CATALOG, RegExp][] = [
    [
      ['compare', 'gc', '--date', '2024-03-01', '--against', '/x'],
      'UsageError',
      /gc has no report to compare/,
    ],
    [
      ['compare', 'request-metering', '--date', '2024-03-01', '--against', '/x'],
      'UsageError',
      /hourly: give --hour/,
    ],
    [
      ['compare', 'request-metering', '--date', '2024-03-01', '--hour', '24', '--against', '/x'],
      'UsageError',
      /--hour/,
    ],
    [
      ['compare', 'request-metering', '--date', '2024-13-01', '--hour', '1', '--against', '/x'],
      'UsageError',
      /--date/,
    ],
    [
      ['compare', 'storage-metering', '--date', '2024-03-01', '--hour', '1', '--against', '/x'],
      'UsageError',
      /daily/,
    ],
    [
      ['compare', 'request-metering', '--date', '2024-03-01', '--hour', '6', '--against', '/x'],
      'ObjectNotFound',
      /run it first/,
    ],
    [
      ['compare', 'request-metering', '--date', '2024-03-01', '--hour', '5', '--against', '/nope'],
      'ObjectNotFound',
      /no such file or object/,
    ],
    [
      ['compare', 'request-metering', '--date', '2024-03-01', '--hour', '5', '--against', 'nope.json'],
      'UsageError',
      /no such file/,
    ],
  ];
  for (const [args, code, message] of cases) {
    const r = await remora(...args);
    assert.equal(r.status, ERROR_CATALOG[code].exit, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^remora: ${code}: `), args.join(' '));
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const bad = path.join(stateDir, 'bad.json');
  fs.writeFileSync(bad, '{"no-owner":1}\n');
  const m = await compareHour('5', bad);
  assert.equal(m.status, ERROR_CATALOG.MalformedInput.exit);
  assert.match(m.stderr, /line 1: no "owner"/);
  const h = await remora('compare', '--help');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--against <file-or-path>/);
});

test('compareReports is pure: same records in any order agree', () => {
  const a = '{"owner":"x","requests":{"type":{"GET":"1"}}}\n{"owner":"y","requests":{"type":{"GET":"2"}}}\n';
  const b = '{"owner":"y","requests":{"type":{"GET":2}}}\n{"owner":"x","requests":{"type":{"GET":"1"}}}';
  assert.deepEqual(compareReports(a, b), []);
  assert.deepEqual(compareReports(a, b.replace('"GET":2', '"GET":3')), [
    { owner: 'y', field: 'requests.type.GET', ours: '2', theirs: '3' },
  ]);
});
