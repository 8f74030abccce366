/**
 * Side-by-side mode (RFD 16 "Incremental development and rollout"; `pipeline.outputPrefix`,
 * src/core/published-path.ts): the mapping and the prefix's validation as tables, then a real
 * day as processes — `remora pipeline run` (snapshot → unpack → storage metering, 24 hours of
 * request and compute metering and access logs, the day's summary) with the original system's
 * files pre-placed at the original's paths: Remora's files land only under the prefix (and in
 * its own /poseidon/stor/remora/), every file of the original is byte-identical afterwards,
 * retention prunes Remora's old copies and none of the original's, and `remora compare` reads
 * Remora's file under the prefix. A bad prefix is InvalidConfig, exit 2.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { validateConfig, defaultConfig } from '../src/config/config.js';
import { ERROR_CATALOG, RemoraError } from '../src/core/errors.js';
import { outputPrefixProblem, publishedPath } from '../src/core/published-path.js';
import { ingestMakoListing } from '../src/dumps/mako.js';
import { snapshotShard } from '../src/dumps/snapshot.js';
import { listAccounts } from '../src/frontdoor/accounts.js';
import { MUSKIE_LOG_ROOT } from '../src/frontdoor/audit-log.js';
import { readObjectText } from '../src/objectstore/object-store.js';
import { writeComputeWorkload } from '../src/workload/compute-meter.js';
import { openCliFixture, type CliFixture } from './helpers/pipeline-cli.js';

const PREFIX = '/poseidon/stor/side-by-side';
const TAG = 'side-by-side';
const P = '2024-04-01';

test("publishedPath: no prefix is the original path; operator files under the prefix; account files in the account's reports/<tag>/", () => {
  const cases: [string | undefined, string, string][] = [
    [
      undefined,
      '/poseidon/stor/usage/storage/2024/04/01/00/h00.json',
      '/poseidon/stor/usage/storage/2024/04/01/00/h00.json',
    ],
    [undefined, '/alice/reports/usage/request/latest', '/alice/reports/usage/request/latest'],
    [
      '/poseidon/stor/remora',
      '/poseidon/stor/usage/storage/2024/04/01/00/h00.json',
      '/poseidon/stor/remora/poseidon/stor/usage/storage/2024/04/01/00/h00.json',
    ],
    [
      '/poseidon/stor/remora',
      '/poseidon/stor/usage/daily-summary.txt',
      '/poseidon/stor/remora/poseidon/stor/usage/daily-summary.txt',
    ],
    [
      '/poseidon/stor/remora',
      '/poseidon/stor/mako/1.stor.dc1',
      '/poseidon/stor/remora/poseidon/stor/mako/1.stor.dc1',
    ],
    [
      '/poseidon/stor/remora',
      '/alice/reports/usage/request/2024/04/01/05/h05.json',
      '/alice/reports/remora/usage/request/2024/04/01/05/h05.json',
    ],
    [
      '/poseidon/stor/remora',
      '/alice/reports/access-logs/latest',
      '/alice/reports/remora/access-logs/latest',
    ],
    ['/poseidon/stor/a/b-2', '/bob/reports/usage/storage', '/bob/reports/b-2/usage/storage'],
    // The operator's own account reports are an account's too.
    [
      '/poseidon/stor/remora',
      '/poseidon/reports/usage/summary/latest',
      '/poseidon/reports/remora/usage/summary/latest',
    ],
    // Not an account's reports directory (`reports` deeper, or a name that only starts so).
    ['/poseidon/stor/remora', '/alice/stor/reports/x', '/poseidon/stor/remora/alice/stor/reports/x'],
    ['/poseidon/stor/remora', '/alice/reportsx/y', '/poseidon/stor/remora/alice/reportsx/y'],
  ];
  for (const [prefix, original, want] of cases)
    assert.equal(publishedPath(prefix, original), want, `${prefix} ${original}`);
  // Never the original's path, whatever the original path (a sample of every kind).
  for (const [, original] of cases) assert.notEqual(publishedPath(PREFIX, original), original);
});

test("outputPrefixProblem: absolute, normalized, under /poseidon/stor/, outside the original's directories", () => {
  const bad: [string, RegExp][] = [
    ['poseidon/stor/remora', /absolute/],
    ['/poseidon/stor/remora/', /must not end with "\/"/],
    ['/poseidon/stor/../stor/remora', /normalized.*"\.\."/],
    ['/poseidon/stor/./remora', /normalized.*"\."/],
    ['/poseidon//stor/remora', /normalized.*""/],
    ['/poseidon/stor/rem ora', /normalized/],
    ['/', /must not end with/],
    ['/remora', /under \/poseidon\/stor\//],
    ['/poseidon/stor', /under \/poseidon\/stor\//],
    ['/alice/stor/remora', /under \/poseidon\/stor\//],
    ['/poseidon/stor/usage', /inside \/poseidon\/stor\/usage/],
    ['/poseidon/stor/usage/remora', /inside \/poseidon\/stor\/usage/],
    ['/poseidon/stor/logs/x', /inside \/poseidon\/stor\/logs/],
    ['/poseidon/stor/manatee_backups/x', /inside/],
    ['/poseidon/stor/x/access-logs', /must not end in "access-logs"/],
    ['/poseidon/stor/x/usage', /must not end in "usage"/],
  ];
  for (const [p, re] of bad) assert.match(outputPrefixProblem(p) ?? '(accepted)', re, p);
  for (const ok of [
    '/poseidon/stor/remora',
    '/poseidon/stor/remora/side-by-side',
    '/poseidon/stor/usage2',
    PREFIX,
  ])
    assert.equal(outputPrefixProblem(ok), undefined, ok);
});

test('a bad pipeline.outputPrefix is InvalidConfig (exit 2) at load, with the key and the reason', () => {
  const base = defaultConfig('/tmp/x');
  const err = (() => {
    try {
      validateConfig({ ...base, pipeline: { outputPrefix: '/poseidon/stor/remora/../usage' } });
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.ok(err instanceof RemoraError);
  assert.equal(err.code, 'InvalidConfig');
  assert.equal(ERROR_CATALOG.InvalidConfig.exit, 2);
  assert.match(err.message, /pipeline\.outputPrefix: must be a normalized path/);
  assert.equal(
    validateConfig({ ...base, pipeline: { outputPrefix: PREFIX } }).pipeline?.outputPrefix,
    PREFIX,
  );
});

// ---------------------------------------------------------------------------------------------
// A real day as processes, beside the original's files

let f: CliFixture;
/** The original system's files, as this test wrote them (path → bytes). */
const original = new Map<string, string>();
const logins = new Map<string, string>();

/** Every object in the store (the local store's data files; its records and temp files are not objects). */
async function allObjects(): Promise<string[]> {
  return (await f.store.list('/')).sort();
}

function auditLine(
  owner: string,
  caller: string,
  method: string,
  op: string,
  status: number,
  len: number,
): string {
  return JSON.stringify({
    name: 'audit',
    audit: true,
    level: 30,
    billable_operation: op,
    reqHeaderLength: 120,
    resHeaderLength: 210,
    req: {
      method,
      url: `/${caller}/stor/a/o${len}`,
      headers: { 'content-length': String(len), 'x-forwarded-for': '10.0.0.7', authorization: 'Signature x' },
      httpVersion: '1.1',
      owner,
      caller: { login: caller },
    },
    res: { statusCode: status, headers: method === 'GET' ? { 'content-length': String(len) } : {} },
    remoteAddress: '127.0.0.1',
  });
}

before(async () => {
  f = await openCliFixture({ dumpDays: [P], pipeline: { outputPrefix: PREFIX, reportRetentionDays: 30 } });
  for (const a of await listAccounts(f.tier)) logins.set(a.login, a.uuid);
  const alice = logins.get('alice')!;
  const bob = logins.get('bob')!;
  // Inputs (read by both systems, never written): an hour of audit logs and three hours of agent logs.
  await f.store.put(
    `${MUSKIE_LOG_ROOT}/2024/04/01/05/fd-a.log`,
    `${[
      auditLine(alice, 'alice', 'PUT', 'PUT', 204, 4096),
      auditLine(alice, 'bob', 'GET', 'GET', 200, 4096),
      auditLine(bob, 'bob', 'GET', 'GET', 404, 10),
      auditLine(bob, 'bob', 'HEAD', 'HEAD', 200, 7),
    ].join('\n')}\n`,
  );
  await writeComputeWorkload(f.store, {
    seed: 5,
    owners: [alice, bob],
    from: Date.parse(`${P}T09:00:00Z`),
    hours: 2,
    jobs: 3,
    nodes: 1,
  });
  // The original's outputs, at the original's paths: this day's, and old days' per-account
  // reports that retention (30 days) would remove if it were pruning the original's tree.
  const theirs = (n: number) => `{"owner":"${alice}","original":${n}}\n`;
  const files: Record<string, string> = {
    '/poseidon/stor/usage/storage/2024/04/01/00/h00.json': theirs(1),
    '/poseidon/stor/usage/request/2024/04/01/05/h05.json': theirs(2),
    '/poseidon/stor/usage/compute/2024/04/01/09/h09.json': theirs(3),
    '/poseidon/stor/usage/compute/latest': theirs(4),
    '/poseidon/stor/usage/summary/2024/04/01/d01.json': theirs(5),
    '/poseidon/stor/usage/summary/2024/04/01/d01.txt': 'the original summary\n',
    '/poseidon/stor/usage/daily-summary.txt': 'the original daily summary\n',
    '/alice/reports/usage/storage/2024/04/01/00/h00.json': '{"storage":"original"}\n',
    '/alice/reports/usage/storage/latest': '{"storage":"original latest"}\n',
    '/alice/reports/usage/request/2024/04/01/05/h05.json': '{"requests":"original"}\n',
    '/alice/reports/usage/request/latest': '{"requests":"original latest"}\n',
    '/alice/reports/usage/summary/latest': '{"summary":"original latest"}\n',
    '/alice/reports/access-logs/2024/04/01/05/h05.json': '{"access":"original"}\n',
    '/alice/reports/access-logs/latest': '{"access":"original latest"}\n',
    '/alice/reports/usage/storage/2024/01/01/00/h00.json': '{"old":"storage"}\n',
    '/alice/reports/usage/request/2024/01/01/05/h05.json': '{"old":"request"}\n',
    '/alice/reports/access-logs/2024/01/01/05/h05.json': '{"old":"access"}\n',
    '/bob/reports/usage/summary/2024/01/01/d01.json': '{"old":"summary"}\n',
    '/carol/reports/usage/compute/2024/01/01/09/h09.json': '{"old":"compute"}\n',
    '/poseidon/stor/mako/1.stor.dc1.remora.local': '/manta/x/y\t1\t1700000000\n',
  };
  for (const [p, body] of Object.entries(files)) {
    await f.store.put(p, body);
    original.set(p, body);
  }
  // The day's stored dumps (the fixture's, at manatee's paths) are the original's files too.
  for (const p of await f.store.list('/poseidon/stor/manatee_backups/'))
    original.set(p, await readObjectText(f.store, p));
  // Remora's own copies from an earlier side-by-side run, past retention: these are pruned.
  for (const p of [
    `/alice/reports/${TAG}/usage/storage/2024/01/01/00/h00.json`,
    `/alice/reports/${TAG}/access-logs/2024/01/01/05/h05.json`,
    `/carol/reports/${TAG}/usage/compute/2024/01/01/09/h09.json`,
  ])
    await f.store.put(p, '{"old":"remora"}\n');
});
after(async () => f?.close());

/** Where Remora's files may be: under the prefix, in its own root, or in an account's reports/<tag>/. */
function remoraOwn(p: string): boolean {
  return (
    p.startsWith(`${PREFIX}/`) ||
    p.startsWith('/poseidon/stor/remora/') ||
    new RegExp(`^/[^/]+/reports/${TAG}/`).test(p)
  );
}

test("with an output prefix, a day of metering leaves the original's files byte-identical and publishes only under the prefix; retention prunes only Remora's copies", async () => {
  const before = new Set(await allObjects());
  const r = await f.run(['pipeline', 'run', '--date', P, '--timeout', '150']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(
      `storage usage 2024-04-01 \\(${PREFIX}/poseidon/stor/usage/storage/2024/04/01/00/h00\\.json\\)`,
    ),
  );
  const runs = await f.runs(P);
  const notOk = runs.filter((x) => x.state !== 'succeeded');
  assert.deepEqual(
    notOk.map((x) => `${x.job} ${x.partitionKey} ${x.state}`),
    [],
  );

  // 1. The original's files: every one still there, byte for byte.
  for (const [p, body] of original) assert.equal(await readObjectText(f.store, p), body, p);

  // 2. Every new object is Remora's: under the prefix, in its own root, or in reports/<tag>/.
  const created = (await allObjects()).filter((p) => !before.has(p));
  assert.ok(created.length > 20, `${created.length} objects created`);
  const stray = created.filter((p) => !remoraOwn(p));
  assert.deepEqual(stray, [], 'nothing published outside the prefix');

  // 3. What the original would have published, Remora published under the prefix (sample of every kind).
  const alice = logins.get('alice')!;
  const expected = [
    `${PREFIX}/poseidon/stor/usage/storage/2024/04/01/00/h00.json`,
    `${PREFIX}/poseidon/stor/usage/request/2024/04/01/05/h05.json`,
    `${PREFIX}/poseidon/stor/usage/compute/2024/04/01/09/h09.json`,
    `${PREFIX}/poseidon/stor/usage/compute/latest`,
    `${PREFIX}/poseidon/stor/usage/summary/2024/04/01/d01.json`,
    `${PREFIX}/poseidon/stor/usage/summary/2024/04/01/d01.txt`,
    `${PREFIX}/poseidon/stor/usage/daily-summary.txt`,
    `/alice/reports/${TAG}/usage/storage/2024/04/01/00/h00.json`,
    `/alice/reports/${TAG}/usage/storage/latest`,
    `/alice/reports/${TAG}/usage/request/2024/04/01/05/h05.json`,
    `/alice/reports/${TAG}/usage/request/latest`,
    `/alice/reports/${TAG}/usage/compute/2024/04/01/09/h09.json`,
    `/alice/reports/${TAG}/usage/summary/2024/04/01/d01.json`,
    `/alice/reports/${TAG}/usage/summary/latest`,
    `/alice/reports/${TAG}/access-logs/2024/04/01/05/h05.json`,
    `/alice/reports/${TAG}/access-logs/latest`,
  ];
  for (const p of expected) assert.ok(created.includes(p), `${p} published`);
  const request = await readObjectText(
    f.store,
    `${PREFIX}/poseidon/stor/usage/request/2024/04/01/05/h05.json`,
  );
  assert.match(request, new RegExp(`^\\{"owner":"${alice}","requests":\\{"type":\\{"DELETE":"0","GET":"1",`));
  const access = await readObjectText(f.store, `/alice/reports/${TAG}/access-logs/2024/04/01/05/h05.json`);
  assert.equal(access.trim().split('\n').length, 2, "alice's two requests");
  assert.doesNotMatch(access, /authorization|x-forwarded-for/);
  // Carol (reports off) gets nothing, prefixed or not.
  assert.ok(!created.some((p) => p.startsWith('/carol/')));

  // 4. Retention (30 days): Remora's old copies are gone; the original's old reports stay (1.).
  for (const p of [
    `/alice/reports/${TAG}/usage/storage/2024/01/01/00/h00.json`,
    `/alice/reports/${TAG}/access-logs/2024/01/01/05/h05.json`,
    `/carol/reports/${TAG}/usage/compute/2024/01/01/09/h09.json`,
  ])
    assert.equal(await f.store.head(p), undefined, `${p} pruned`);
  const pruned = (job: string) =>
    runs.filter((x) => x.job === job).reduce((n, x) => n + (x.report?.counters.reportsPruned ?? 0), 0);
  assert.equal(pruned('storage-metering'), 1);
  assert.equal(pruned('access-logs'), 1);
  assert.equal(pruned('compute-metering') >= 1, true, 'carol (reports off) pruned too');
  assert.equal(pruned('request-metering'), 0, "the original's old request report is not Remora's to prune");
  assert.equal(pruned('usage-summary'), 0);
});

test("remora compare reads Remora's file under the prefix: against the original's object (the default) and a local file", async () => {
  const ours = `${PREFIX}/poseidon/stor/usage/storage/2024/04/01/00/h00.json`;
  // Against the original's file at the original's path (the default with a prefix): they differ.
  const differ = await f.run(['compare', 'storage-metering', '--date', P]);
  assert.equal(differ.code, ERROR_CATALOG.ReportsDiffer.exit, differ.stderr);
  assert.match(
    differ.stderr,
    new RegExp(`between ${ours} and /poseidon/stor/usage/storage/2024/04/01/00/h00\\.json`),
  );
  assert.match(differ.stdout, /original/);
  // The same bytes as Remora's, as a local file: they agree.
  const copy = path.join(f.stateDir, 'original-h00.json');
  fs.writeFileSync(copy, await readObjectText(f.store, ours));
  const agree = await f.run(['compare', 'storage-metering', '--date', P, '--against', copy]);
  assert.equal(agree.code, 0, agree.stderr);
  assert.match(agree.stdout, new RegExp(`storage-metering ${ours} agrees with ${copy}`));
  // The hourly request report, against the original's object named explicitly.
  const hour = await f.run([
    'compare',
    'request-metering',
    '--date',
    P,
    '--hour',
    '5',
    '--against',
    '/poseidon/stor/usage/request/2024/04/01/05/h05.json',
  ]);
  assert.equal(hour.code, ERROR_CATALOG.ReportsDiffer.exit, hour.stderr);
  assert.match(hour.stderr, new RegExp(`${PREFIX}/poseidon/stor/usage/request/2024/04/01/05/h05\\.json`));
  // The summary is comparable too.
  const summary = await f.run(['compare', 'usage-summary', '--date', P]);
  assert.equal(summary.code, ERROR_CATALOG.ReportsDiffer.exit, summary.stderr);
  // Nothing compare did touched the original's files.
  for (const [p, body] of original) assert.equal(await readObjectText(f.store, p), body, p);
});

test("Remora's own dump and node listing go under the prefix, never among the original's", async () => {
  const shard = [...f.tier.shards.values()][0]!;
  const snap = await snapshotShard(shard, f.store, { outputPrefix: PREFIX });
  assert.ok(
    snap.path.startsWith(`${PREFIX}/poseidon/stor/manatee_backups/${shard.name}/`),
    `${snap.path} under the prefix`,
  );
  assert.ok(await f.store.head(snap.path));
  const node = '1.stor.dc1.remora.local';
  const listing = await ingestMakoListing(
    f.store,
    {
      storageId: node,
      startedAt: '2024-04-01T03:00:00.000Z',
      lines: Readable.from([
        `/manta/${logins.get('alice')!}/00000000-0000-4000-8000-000000000001\t10\t1700000000`,
      ]),
    },
    { partitions: 2, outputPrefix: PREFIX },
  );
  assert.equal(listing.listingPath, `${PREFIX}/poseidon/stor/mako/${node}`);
  assert.match(await readObjectText(f.store, listing.listingPath), /\t10\t1700000000\n$/);
  for (const [p, body] of original) assert.equal(await readObjectText(f.store, p), body, p);
});

test('a bad prefix in the configuration: the command exits 2 with InvalidConfig naming the key', async () => {
  const bad = path.join(f.stateDir, 'bad-config.json');
  const cfg = JSON.parse(fs.readFileSync(path.join(f.stateDir, 'config.json'), 'utf8')) as {
    pipeline: Record<string, unknown>;
  };
  for (const prefix of ['/poseidon/stor/remora/', 'relative/path', '/poseidon/stor/usage/remora']) {
    fs.writeFileSync(bad, JSON.stringify({ ...cfg, pipeline: { ...cfg.pipeline, outputPrefix: prefix } }));
    const r = await f.run(['compare', 'storage-metering', '--date', P], { REMORA_CONFIG: bad });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /InvalidConfig: invalid configuration .*pipeline\.outputPrefix: must/);
  }
  // Without a prefix, --against is required (there is no original path to default to).
  fs.writeFileSync(bad, JSON.stringify({ ...cfg, pipeline: { ...cfg.pipeline, outputPrefix: undefined } }));
  const r = await f.run(['compare', 'storage-metering', '--date', P], { REMORA_CONFIG: bad });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /UsageError: give --against/);
});
