/**
 * `remora demo`, the quick start's main job, as a process: a whole embedded deployment, a
 * workload, the daily pipeline with gc, and the usage table — on a small workload.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './helpers/net.js';
import { LocalObjectStore, readObjectText } from '../src/objectstore/object-store.js';
import { operatorSummaryPath, userSummaryPath } from '../src/jobs/usage-summary/usage-summary.rules.js';

test('remora demo runs the whole day and ends with the usage table', { timeout: 240_000 }, async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-demo-'));
  fs.chmodSync(stateDir, 0o755); // the embedded PostgreSQL runs as another user when tests run as root
  try {
    // Its own embedded PostgreSQL (the demo's port is postgres.port + 1): a free one.
    const port = (await freePort()) - 1;
    fs.writeFileSync(path.join(stateDir, 'config.json'), JSON.stringify({ postgres: { port } }));
    const env = { ...process.env };
    delete env.REMORA_PG_URL;
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/main/cli.ts',
        '--state-dir',
        stateDir,
        'demo',
        '--objects',
        '80',
        '--seed',
        '5',
      ],
      { encoding: 'utf8', env, timeout: 220_000 },
    );
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /== workload: seed 5, \d+ accounts, 80 object operations/);
    for (const job of ['snapshot', 'unpack', 'storage-metering', 'gc'])
      assert.match(r.stdout, new RegExp(`^ +${job} .* succeeded`, 'm'), job);
    assert.doesNotMatch(r.stdout, / (failed|invalid|blocked) /);
    assert.match(r.stdout, /gc: \d+ delete records; .* copies .* moved to tombstone/);
    assert.match(r.stdout, /storage usage \d{4}-\d{2}-\d{2} \(\/poseidon\/stor\/usage\/storage\//);
    assert.match(r.stdout, /^account +namespace +directories +keys +objects +bytes$/m);
    // The workload's hour, metered (unless the demo ran in the day's last hour: said so).
    if (!/ends at midnight/.test(r.stdout)) {
      for (const job of ['request-metering', 'access-logs'])
        assert.match(r.stdout, new RegExp(`^ +${job} +\\d{4}-\\d{2}-\\d{2}T\\d{2} +succeeded`, 'm'), job);
      assert.match(r.stdout, /^requests \d{4}-\d{2}-\d{2}T\d{2} \(\/poseidon\/stor\/usage\/request\//m);
      assert.match(r.stdout, /^account +DELETE +GET +HEAD +LIST +OPTIONS +POST +PUT +bytes in +bytes out$/m);
    }
    assert.match(r.stdout, /hourly runs: \d+ done/);
    // The day's runs in the order they ran, not by job name (by name: audit < manifests and
    // storage-metering < unpack): each job's row after its upstream's.
    const row = (job: string) => r.stdout.search(new RegExp(`^ +${job} `, 'm'));
    for (const [up, down] of [
      ['snapshot', 'unpack'],
      ['unpack', 'storage-metering'],
      ['manifests', 'audit'],
    ] as const)
      assert.ok(row(up) >= 0 && row(up) < row(down), `${up} is listed before ${down}`);
    // The workload's progress went to the log (stderr), with its final line.
    assert.match(r.stderr, /workload: (\d+)\/\1 ops, [\d.]+ ops\/s, .* put, ETA 0s$/m);

    // The day's summary table, and its numbers are the summary file's.
    assert.match(r.stdout, /^ +usage-summary +\d{4}-\d{2}-\d{2} +succeeded/m);
    const head =
      /^usage summary (\d{4}-\d{2}-\d{2}) \(\/poseidon\/stor\/usage\/summary\/.*d\d\d\.json\)$/m.exec(
        r.stdout,
      );
    assert.ok(head, 'the summary table is printed');
    const day = head[1]!;
    const table = r.stdout.slice(head.index).split('\n').slice(1).filter(Boolean);
    const cols = table[0]!.split(/\s+/).join(' ');
    assert.equal(
      cols,
      'account storage GB-h DELETE GET HEAD LIST OPTIONS POST PUT bytes in bytes out compute GB-s',
    );
    const rows = table.slice(1).map((l) => l.split(/\s+/));
    const store = new LocalObjectStore(path.join(stateDir, 'demo', 'objects'));
    const numbers = (x: {
      storageGBHours: string;
      requests: Record<string, string>;
      bandwidthBytes: { in: string; out: string };
      computeGBSeconds: string;
    }) => [
      x.storageGBHours,
      ...['DELETE', 'GET', 'HEAD', 'LIST', 'OPTIONS', 'POST', 'PUT'].map((op) => x.requests[op]!),
      x.bandwidthBytes.in,
      x.bandwidthBytes.out,
      x.computeGBSeconds,
    ];
    const file = (await readObjectText(store, operatorSummaryPath(day)))
      .split('\n')
      .filter(Boolean)
      .map((l) => numbers(JSON.parse(l) as Parameters<typeof numbers>[0]).join(' '));
    assert.deepEqual(rows.map((c) => c.slice(1).join(' ')).sort(), file.sort());
    assert.ok(
      file.some((l) => !/^0 /.test(l)) && rows.some((c) => Number(c.at(-1)) > 0),
      'storage and compute are in it',
    );
    // The accounts' copies went into their namespaces through the front door, not the local store.
    for (const c of rows) assert.equal(await store.head(userSummaryPath(c[0]!, day)), undefined, c[0]);
  } finally {
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});
