/**
 * snapshot → unpack → storage metering through the executor, checked against a ground truth
 * computed independently from the live metadata (a plain JS pass over every index shard's
 * `manta` rows), on a workload with links within and across directories, namespaces and
 * accounts, zero-byte objects, uploads, overwrites, deletes and one malformed row.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../src/core/clock.js';
import { NAMESPACES } from '../src/core/ids.js';
import type { MetadataTier } from '../src/metadata/metadata-tier.js';
import { defaultJobs } from '../src/jobs/catalog.js';
import { dayOf } from '../src/core/days.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { pipelineSettings } from '../src/pipeline/settings.js';
import { MIN_SIZE } from '../src/jobs/storage-metering/storage-metering.rules.js';
import { FAST, openTestPipeline, type TestPipeline } from './helpers/pipeline.js';
import { readText } from './helpers/pipeline-jobs.js';
import { testConfig } from './helpers/pg.js';

let tp: TestPipeline;
const rnd = new SeededRandom(42);
const SHARKS = ['1.stor.dc1.remora.local', '2.stor.dc2.remora.local', '3.stor.dc3.remora.local'];
const accounts = [
  { uuid: rnd.uuid(), login: 'alice', reports: true },
  { uuid: rnd.uuid(), login: 'bob', reports: true },
  { uuid: rnd.uuid(), login: 'carol', reports: false },
];

before(async () => {
  const config = testConfig();
  const settings = pipelineSettings(config, { ...FAST, partitions: 4 });
  tp = await openTestPipeline({ config, jobs: defaultJobs(settings), settings: { partitions: 4 } });
  await tp.startWorker();
});
after(async () => tp.close());

const base = (key: string, owner: string) => ({
  dirname: key.slice(0, key.lastIndexOf('/')),
  key,
  headers: {},
  mtime: 1_700_000_000_000,
  name: key.slice(key.lastIndexOf('/') + 1),
  creator: owner,
  owner,
  roles: [],
});
const dir = (key: string, owner: string) => ({ ...base(key, owner), type: 'directory' });
function obj(key: string, owner: string, objectId: string, size: number, copies: number) {
  const sharks =
    size === 0
      ? []
      : SHARKS.slice(0, copies).map((id) => ({ datacenter: id.split('.')[2], manta_storage_id: id }));
  return {
    ...base(key, owner),
    type: 'object',
    contentLength: size,
    contentMD5: 'x',
    contentType: 'application/octet-stream',
    etag: objectId,
    objectId,
    sharks,
  };
}

async function workload(tier: MetadataTier): Promise<void> {
  const put = (key: string, v: object) => tier.putObject('manta', key, v as Record<string, unknown>);
  const objects: { key: string; value: ReturnType<typeof obj> }[] = [];
  for (const a of accounts) {
    await tier.putObject('accounts', a.uuid, { ...a, tokenHash: 'x' });
    for (const ns of ['stor', 'public', 'jobs', 'reports', 'uploads'])
      await put(`/${a.uuid}/${ns}`, dir(`/${a.uuid}/${ns}`, a.uuid));
    for (const d of ['stor/a', 'stor/a/b', 'stor/c', 'public/p'])
      await put(`/${a.uuid}/${d}`, dir(`/${a.uuid}/${d}`, a.uuid));
    for (let i = 0; i < 25; i++) {
      const d = rnd.pick(['stor/a', 'stor/a/b', 'stor/c', 'public/p', 'jobs', 'reports', 'uploads']);
      const size = rnd.pick([0, 1, 4096, MIN_SIZE - 1, MIN_SIZE, MIN_SIZE + 1, 5_000_000]);
      const key = `/${a.uuid}/${d}/o${i}`;
      const value = obj(key, a.uuid, rnd.uuid(), size, 1 + rnd.int(3));
      await put(key, value);
      objects.push({ key, value });
    }
  }
  // Snaplinks: a new key sharing the objectId — within a directory, across directories (so
  // across shards), across namespaces, and into another account's namespace (charged to each).
  for (let i = 0; i < 30; i++) {
    const src = rnd.pick(objects);
    const owner = rnd.next() < 0.3 ? rnd.pick(accounts).uuid : src.value.owner;
    const d = rnd.pick(['stor/a', 'stor/c', 'public/p', 'reports', 'uploads']);
    const key = `/${owner}/${d}/link${i}`;
    await put(key, { ...src.value, ...base(key, owner), createdFrom: src.key });
  }
  // Overwrites (new objectId) and deletes.
  for (let i = 0; i < 8; i++) {
    const o = objects[i * 3]!;
    await put(o.key, obj(o.key, o.value.owner, rnd.uuid(), 7777, 2));
  }
  for (let i = 0; i < 6; i++) await tier.deleteObject('manta', objects[i * 5 + 1]!.key).catch(() => {});
  // One malformed row: a bad record is an event, never fatal.
  await tier.indexShards[0]!.pool.query(
    `INSERT INTO manta (_key, _value, _etag, owner, type) VALUES ('/broken/stor/x', 'not json {', '00000000', NULL, 'object')`,
  );
}

interface Cell {
  directories: bigint;
  keys: bigint;
  objects: bigint;
  bytes: bigint;
}
type Truth = Map<string, Map<string, Cell>>;

/** The rules of MANTA-REFERENCE §3.6, applied row by row to the live metadata. */
async function groundTruth(tier: MetadataTier): Promise<Truth> {
  const truth: Truth = new Map();
  const firstNs = new Map<string, { rank: number; bytes: bigint }>();
  const cell = (owner: string, ns: string) => {
    const m = truth.get(owner) ?? new Map<string, Cell>();
    truth.set(owner, m);
    const c = m.get(ns) ?? { directories: 0n, keys: 0n, objects: 0n, bytes: 0n };
    m.set(ns, c);
    return c;
  };
  for (const s of tier.indexShards) {
    for (const { _value } of (await s.pool.query<{ _value: string }>('SELECT _value FROM manta')).rows) {
      let v: {
        key: string;
        owner: string;
        type: string;
        objectId?: string;
        contentLength?: number;
        sharks?: unknown[];
      };
      try {
        v = JSON.parse(_value) as typeof v;
      } catch {
        continue;
      }
      const ns = v.key.split('/')[2]!;
      const rank = (NAMESPACES as readonly string[]).indexOf(ns);
      if (rank < 0) continue;
      if (v.type === 'directory') cell(v.owner, ns).directories++;
      else {
        cell(v.owner, ns).keys++;
        const id = `${v.owner}|${v.objectId}`;
        const bytes = BigInt(Math.max(v.contentLength ?? 0, MIN_SIZE)) * BigInt(v.sharks?.length ?? 0);
        const prev = firstNs.get(id);
        if (!prev || rank < prev.rank) firstNs.set(id, { rank, bytes });
      }
    }
  }
  for (const [id, { rank, bytes }] of firstNs) {
    const c = cell(id.split('|')[0]!, NAMESPACES[rank]!);
    c.objects++;
    c.bytes += bytes;
  }
  return truth;
}

test('storage metering equals the ground truth from live metadata; reports delivered to opted-in accounts', async () => {
  await workload(tp.rt.services.tier);
  const truth = await groundTruth(tp.rt.services.tier);
  const day = dayOf(Date.now());
  await scheduleDay(tp.rt, day, 'test');
  const runs = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 60_000 });
  const states = runs.map((r) => `${r.job}:${r.state}:${r.verdict}:${r.error ?? ''}`);
  assert.ok(
    runs.every((r) => r.state === 'succeeded'),
    states.join('\n'),
  );
  const metering = runs.find((r) => r.job === 'storage-metering')!;
  assert.equal(metering.verdict, 'degraded', 'one malformed row: degraded, not invalid');
  assert.equal(metering.report!.events['error:malformed-record']!.count, 1);

  const path = `/poseidon/stor/usage/storage/${day.replaceAll('-', '/')}/00/h00.json`;
  const lines = (await readText(tp.store, path))!
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { owner: string; storage: Record<string, Record<string, string>> });
  assert.deepEqual(
    lines.map((l) => l.owner),
    [...truth.keys()].sort(),
  );
  const total = (f: string) =>
    lines.reduce((a, l) => a + NAMESPACES.reduce((b, ns) => b + Number(l.storage[ns]![f]), 0), 0);
  assert.ok(total('keys') > total('objects'), 'links add keys, not objects');
  assert.ok(total('bytes') > 0 && total('directories') >= 3 * 8);
  for (const l of lines) {
    for (const ns of NAMESPACES) {
      const t = truth.get(l.owner)?.get(ns) ?? { directories: 0n, keys: 0n, objects: 0n, bytes: 0n };
      assert.deepEqual(
        l.storage[ns],
        {
          directories: t.directories.toString(),
          keys: t.keys.toString(),
          objects: t.objects.toString(),
          bytes: t.bytes.toString(),
        },
        `${l.owner} ${ns}`,
      );
    }
  }
  for (const a of accounts) {
    const p = `/${a.login}/reports/usage/storage/${day.replaceAll('-', '/')}/00/h00.json`;
    const got = await readText(tp.store, p);
    if (!a.reports) {
      assert.equal(got, undefined, 'no delivery to an account that opted out');
      continue;
    }
    const rec = JSON.parse(got!) as { storage: unknown; date: string; owner?: string };
    assert.equal(rec.owner, undefined);
    assert.equal(rec.date, `${day}T00:00:00.000Z`);
    assert.deepEqual(rec.storage, lines.find((l) => l.owner === a.uuid)!.storage);
    assert.equal(await readText(tp.store, `/${a.login}/reports/usage/storage/latest`), got);
  }
});
