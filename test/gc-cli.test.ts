/**
 * `remora gc plan | status | restore` as real processes (`node --import tsx src/main/cli.ts`)
 * against a deployment running in this process (real PostgreSQL, real loopback storage nodes),
 * with their bad inputs: a named error and a non-zero exit, and nothing changed.
 *
 *   plan     before gc ran: what it would move equals the garbage on disk, and nothing moved
 *   status   before and after the day's gc: the live backlog, the latest run's, tombstone per
 *            node with the next purge day; a stopped node shows as unreachable
 *   restore  a tombstoned copy a live record references again comes back on every node, and the
 *            records are whole; refused when nothing references it (unless --force --owner)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { addDays, dayOf } from '../src/core/days.js';
import { ERROR_CATALOG } from '../src/core/errors.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { withDailyPipeline } from '../src/jobs/catalog.js';
import { DELETE_LOG_BUCKET, MANTA_BUCKET } from '../src/metadata/buckets.js';
import { countRows, listAll } from '../src/metadata/moray.repository.js';
import type { MantaObjectValue, MantaValue } from '../src/metadata/types.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { runWorkload } from '../src/workload/driver.js';
import { DEFAULT_SPEC } from '../src/workload/generator.js';
import { startTestDeployment } from './helpers/deployment.js';
import { FAST } from './helpers/pipeline.js';
import { CliProcess, type CliResult } from './helpers/pipeline-cli.js';

let d: Deployment;
let cleanup: () => Promise<void>;
const today = dayOf(Date.now());

const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('REMORA_') || k === 'REMORA_TEST_PG_URL'),
);
const remora = (...args: string[]): Promise<CliResult> =>
  new CliProcess(['--state-dir', d.config.stateDir, ...args], env).exited;

/** `remora: <Code>: …` on stderr with the catalog's exit code, and no stack trace. */
function refused(r: CliResult, code: keyof typeof ERROR_CATALOG, what: RegExp): void {
  assert.equal(r.code, ERROR_CATALOG[code].exit, `exit code\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`remora: ${code}: `), r.stderr);
  assert.match(r.stderr, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

/** Copies on disk (`node/dir/oid`) and tombstoned files (`node/day/oid`). */
function onDisk() {
  const copies = new Map<string, number>();
  const tombstoned = new Map<string, number>();
  for (const [id, n] of d.nodes) {
    for (const dir of fs.readdirSync(n.root)) {
      const p = path.join(n.root, dir);
      if (dir === 'tombstone') {
        for (const day of fs.readdirSync(p))
          for (const oid of fs.readdirSync(path.join(p, day)))
            tombstoned.set(`${id}/${day}/${oid}`, fs.statSync(path.join(p, day, oid)).size);
      } else if (/^[0-9a-f-]{36}$/.test(dir))
        for (const oid of fs.readdirSync(p))
          copies.set(`${id}/${dir}/${oid}`, fs.statSync(path.join(p, oid)).size);
    }
  }
  return { copies, tombstoned };
}

async function liveRecords(): Promise<MantaObjectValue[]> {
  const rows = (
    await Promise.all(d.tier.indexShards.map((s) => listAll<MantaValue>(s.pool, MANTA_BUCKET)))
  ).flat();
  return rows.map((r) => r.value).filter((v): v is MantaObjectValue => v.type === 'object');
}

async function garbage(): Promise<Map<string, number>> {
  const referenced = new Set<string>();
  for (const v of await liveRecords())
    for (const s of v.sharks) referenced.add(`${s.manta_storage_id}/${v.creator || v.owner}/${v.objectId}`);
  return new Map([...onDisk().copies].filter(([c]) => !referenced.has(c)));
}

const deleteLog = async () => {
  let n = 0;
  for (const s of d.tier.indexShards) n += await countRows(s.pool, DELETE_LOG_BUCKET);
  return n;
};

before(async () => {
  ({ d, cleanup } = await startTestDeployment());
  const c = d.config;
  fs.writeFileSync(
    path.join(c.stateDir, 'config.json'),
    JSON.stringify({
      postgres: { url: c.postgres.url, databasePrefix: c.postgres.databasePrefix },
      pipeline: { partitions: 2, jobs: { gc: { graceDays: 0 } } },
    }),
  );
  const w = await runWorkload(d.tier, d.frontdoorUrl, {
    ...DEFAULT_SPEC,
    seed: 21,
    objects: 80,
    overwriteRate: 0.2,
    deleteRate: 0.2,
    linkRate: 0.15,
    maxObjectBytes: 8192,
  });
  assert.ok(w.overwrites + w.deletes > 10, JSON.stringify(w));
  // The day's snapshots and unpacks, gc switched off: `gc plan` reads them.
  await withDailyPipeline(
    d.config,
    d.tier,
    {
      log: () => {},
      settings: { ...FAST, partitions: 2, jobs: { gc: { enabled: false } } },
      internalToken: d.internalToken,
    },
    async (rt, co) => {
      await scheduleDay(rt, today, 'test');
      const runs = await driveDays(rt, co, [today], { timeoutMs: 120_000 });
      assert.ok(
        runs.every((r) => r.state === 'succeeded'),
        runs.map((r) => `${r.job}:${r.state}`).join(', '),
      );
    },
  );
});

after(async () => cleanup?.());

test(
  'gc plan --date: what the day would move equals the garbage on disk; nothing moves',
  { timeout: 120_000 },
  async () => {
    const want = await garbage();
    assert.ok(want.size > 5, `garbage: ${want.size}`);
    const disk = onDisk();
    const logBefore = await deleteLog();
    const r = await remora('gc', 'plan', '--date', today);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /a dry run — nothing was moved/);
    assert.match(r.stdout, new RegExp(`would move ${want.size} copies`));
    const j = await remora('--json', 'gc', 'plan', '--date', today);
    assert.equal(j.code, 0, j.stderr);
    const p = JSON.parse(j.stdout) as {
      report: { counters: Record<string, number> };
      backlog: { eligibleNotMoved: { copies: number; bytes: number } };
      planPrefix: string;
      snapshots: unknown[];
    };
    assert.equal(p.report.counters.copiesWouldTombstone, want.size);
    assert.equal(p.backlog.eligibleNotMoved.copies, want.size);
    assert.equal(p.snapshots.length, 2, 'one snapshot per index shard');
    assert.ok(fs.existsSync(path.join(d.config.stateDir, 'objects', p.planPrefix)), 'the plans are stored');
    assert.deepEqual(onDisk(), disk, 'nothing moved');
    assert.equal(await deleteLog(), logBefore, 'no delete record removed');

    const missing = await remora('gc', 'plan');
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /required option '--date <day>'/);
    refused(
      await remora('gc', 'plan', '--date', '2999-01-01'),
      'UsageError',
      /--date: 2999-01-01 is in the future/,
    );
    refused(await remora('gc', 'plan', '--date', '2024-02-30'), 'UsageError', /--date: not a calendar day/);
    refused(await remora('gc', 'plan', '--date', addDays(today, -3)), 'UsageError', /no committed unpack of/);
  },
);

test(
  'gc status before and after the day’s gc: live and latest backlog, tombstone per node, a node down',
  { timeout: 180_000 },
  async () => {
    const want = await garbage();
    const s0 = await remora('--json', 'gc', 'status');
    assert.equal(s0.code, 0, s0.stderr);
    const before = JSON.parse(s0.stdout) as Status;
    assert.equal(before.latest, undefined, 'no gc run yet');
    assert.equal(
      before.live.eligibleNotMoved.copies,
      want.size,
      'live: past a grace of 0, nothing references them',
    );
    assert.equal(before.live.scanned, await deleteLog());
    assert.ok(before.tombstone.every((t) => t.state === 'ok' && t.files === 0));

    await withDailyPipeline(
      d.config,
      d.tier,
      { log: () => {}, settings: gcGraceZero, internalToken: d.internalToken },
      async (rt, co) => {
        await scheduleDay(rt, today, 'test'); // only gc had no run yet
        const runs = await driveDays(rt, co, [today], { timeoutMs: 120_000 });
        assert.equal(runs.find((r) => r.job === 'gc')?.state, 'succeeded');
      },
    );
    const stopped = [...d.nodes.keys()][0]!;
    await d.stopNode(stopped);
    try {
      const s1 = await remora('--json', 'gc', 'status');
      assert.equal(s1.code, 0, s1.stderr);
      const after = JSON.parse(s1.stdout) as Status;
      assert.equal(after.latest?.day, today);
      assert.deepEqual(after.latest?.output.backlog?.eligibleNotMoved, { records: 0, copies: 0, bytes: 0 });
      assert.equal(after.live.scanned, 0, 'the delete log is empty');
      const down = after.tombstone.find((t) => t.node === stopped)!;
      assert.equal(down.state, 'unreachable');
      const up = after.tombstone.filter((t) => t.node !== stopped);
      const tomb = onDisk().tombstoned;
      const bytesOnUp = [...tomb]
        .filter(([k]) => !k.startsWith(`${stopped}/`))
        .reduce((n, [, b]) => n + b, 0);
      assert.equal(
        up.reduce((n, t) => n + t.bytes, 0),
        bytesOnUp,
        'bytes in tombstone per node, as on disk',
      );
      for (const t of up.filter((x) => x.files > 0)) assert.equal(t.nextPurgeDay, addDays(today, 21));
      const text = await remora('gc', 'status');
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /as of the latest gc run: day \d{4}-\d{2}-\d{2}, run \d+ \(ok\)/);
      assert.match(text.stdout, new RegExp(`${stopped.replaceAll('.', '\\.')}\\s+unreachable`));
      assert.match(text.stdout, new RegExp(`next purge`));
    } finally {
      await d.startNode(stopped);
    }
  },
);

test(
  'gc restore: back on every node whose tombstone holds it, the records whole again; refusals',
  { timeout: 120_000 },
  async () => {
    const tomb = onDisk().tombstoned;
    const byOid = new Map<string, string[]>();
    for (const k of tomb.keys()) {
      const [node, , oid] = k.split('/') as [string, string, string];
      byOid.set(oid, [...(byOid.get(oid) ?? []), node]);
    }
    const [x, y] = [...byOid.keys()].filter((oid) => byOid.get(oid)!.length >= 1);
    assert.ok(x && y, 'two tombstoned objects');

    // Nothing references x: refused, nothing moves.
    refused(await remora('gc', 'restore', x), 'UsageError', /no live record references/);
    assert.deepEqual(onDisk().tombstoned, tomb);

    // A record referencing x again (what a walking link GC had missed would look like).
    const owner = [...(await liveRecords())][0]!.owner;
    const nodesOfX = byOid.get(x)!;
    const key = `/${owner}/stor/restored-${x.slice(0, 8)}`;
    await d.tier.putObject('manta', key, {
      dirname: `/${owner}/stor`,
      key,
      headers: {},
      mtime: Date.now(),
      name: key.slice(key.lastIndexOf('/') + 1),
      creator: owner,
      owner,
      roles: [],
      type: 'object',
      contentLength: 1,
      contentMD5: 'x',
      contentType: 'application/octet-stream',
      etag: x,
      objectId: x,
      sharks: nodesOfX.map((n) => ({ manta_storage_id: n, datacenter: n.split('.')[2] })),
    });
    // The record says where its copies live (`creator || owner`): the restore puts them there.
    const r = await remora('gc', 'restore', x);
    assert.equal(r.code, 0, r.stderr);
    for (const n of nodesOfX) {
      assert.match(r.stdout, new RegExp(`${n.replaceAll('.', '\\.')}\\s+restored\\s+${today}`));
      assert.ok(fs.existsSync(path.join(d.nodes.get(n)!.root, owner, x)), `${n}: back in place`);
    }
    assert.match(r.stdout, new RegExp(`${key}.*in place`));
    assert.doesNotMatch(r.stdout, /missing/);
    const again = await remora('--json', 'gc', 'restore', x);
    assert.equal(again.code, 0, again.stderr);
    const res = JSON.parse(again.stdout) as { nodes: { node: string; outcome: string }[] };
    assert.deepEqual(
      res.nodes.filter((n) => nodesOfX.includes(n.node)).map((n) => n.outcome),
      nodesOfX.map(() => 'absent'),
      'nothing left in tombstone for it',
    );

    // --force --owner for y, which nothing references: restored all the same.
    const f = await remora('gc', 'restore', y, '--force', '--owner', owner);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /no live record references it/);
    for (const n of byOid.get(y)!) assert.ok(fs.existsSync(path.join(d.nodes.get(n)!.root, owner, y)));

    refused(
      await remora('gc', 'restore', 'not-a-uuid'),
      'UsageError',
      /<objectId>: expected a lower-case uuid/,
    );
    refused(await remora('gc', 'restore', x.toUpperCase()), 'UsageError', /lower-case uuid/);
    refused(
      await remora('gc', 'restore', x, '--day', '2024-02-30'),
      'UsageError',
      /--day: not a calendar day/,
    );
    refused(
      await remora('gc', 'restore', x, '--owner', 'nobody'),
      'UsageError',
      /--owner: expected a lower-case uuid/,
    );
    refused(await remora('gc', 'restore', y, '--force'), 'UsageError', /--force needs --owner/);
    const never = 'f0000000-0000-4000-8000-000000000001';
    refused(
      await remora('gc', 'restore', never, '--force', '--owner', owner),
      'ObjectNotFound',
      /no node holds/,
    );
    refused(
      await remora('gc', 'restore', y, '--force', '--owner', owner, '--day', addDays(today, -1)),
      'ObjectNotFound',
      new RegExp(`no node holds ${y} in tombstone for ${addDays(today, -1)}`),
    );
  },
);

const gcGraceZero = { ...FAST, partitions: 2, jobs: { gc: { enabled: true, graceDays: 0 } } };

interface Status {
  latest?: { day: string; output: { backlog?: { eligibleNotMoved: unknown } } };
  live: { scanned: number; eligibleNotMoved: { copies: number } };
  tombstone: { node: string; state: string; files: number; bytes: number; nextPurgeDay?: string }[];
}
