/**
 * Audit end to end on real parts, with faults injected on the nodes' disks: a workload through
 * the front door, then (seeded) some copies deleted and some flipped by a byte, a record under
 * `/<uuid>/uploads/` with no file (excepted, MANTA-3410) and one naming a node that is not in the
 * deployment; then the daily pipeline. After every shard's snapshot, before the listings, more
 * objects are written and some of their copies deleted or corrupted too: their records are in
 * no snapshot, so none of them may be reported (DESIGN.md invariant 5).
 *
 * Audit must report exactly the injected missing copies, per (objectId, node, key, shard) —
 * links give one problem per record, as the original did — and, with a one-day deep cycle (every
 * present copy sampled), exactly the corrupted ones. The test prints its counts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SeededRandom } from '../src/core/clock.js';
import { addDays, dayOf } from '../src/core/days.js';
import { ERROR_CATALOG } from '../src/core/errors.js';
import { readAuditDay, readProblems } from '../src/jobs/audit/audit.show.js';
import type { Problem } from '../src/jobs/audit/audit.rules.js';
import { MANTA_BUCKET } from '../src/metadata/buckets.js';
import { listAll } from '../src/metadata/moray.repository.js';
import type { MantaObjectValue, MantaValue } from '../src/metadata/types.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { withPipelineSession } from '../src/pipeline/session.js';
import { runWorkload } from '../src/workload/driver.js';
import { DEFAULT_SPEC } from '../src/workload/generator.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { startTestDeployment } from './helpers/deployment.js';
import { cliOf, jobsWithAfterSnapshots, PATIENT } from './helpers/audit-world.js';

interface Copy {
  objectId: string;
  node: string;
  owner: string;
  bytes: number;
}

async function liveObjects(d: Deployment) {
  const out: { key: string; shard: string; value: MantaObjectValue }[] = [];
  for (const s of d.tier.indexShards)
    for (const r of await listAll<MantaValue>(s.pool, MANTA_BUCKET))
      if (r.value.type === 'object') out.push({ key: r.key, shard: s.name, value: r.value });
  return out;
}

function copiesOf(records: Awaited<ReturnType<typeof liveObjects>>): Copy[] {
  const m = new Map<string, Copy>();
  for (const r of records)
    for (const s of r.value.sharks ?? [])
      m.set(`${r.value.objectId}@${s.manta_storage_id}`, {
        objectId: r.value.objectId,
        node: s.manta_storage_id,
        owner: r.value.creator || r.value.owner,
        bytes: r.value.contentLength ?? 0,
      });
  return [...m.values()].sort((a, b) => `${a.objectId}@${a.node}`.localeCompare(`${b.objectId}@${b.node}`));
}

const fileOf = (d: Deployment, c: Copy) => path.join(d.nodes.get(c.node)!.root, c.owner, c.objectId);

function flipByte(file: string, rnd: SeededRandom): void {
  const buf = fs.readFileSync(file);
  const i = rnd.int(buf.length);
  buf[i] = buf[i]! ^ 0xff;
  const st = fs.statSync(file);
  fs.writeFileSync(file, buf);
  fs.utimesSync(file, st.atime, st.mtime);
}

function pick<T>(xs: T[], n: number, rnd: SeededRandom): T[] {
  const a = [...xs];
  const out: T[] = [];
  while (out.length < n && a.length > 0) out.push(a.splice(rnd.int(a.length), 1)[0]!);
  return out;
}

const pKey = (p: Pick<Problem, 'objectId' | 'node' | 'key' | 'shard'>) =>
  `${p.objectId} ${p.node} ${p.key} ${p.shard}`;

test(
  'audit finds exactly the injected missing and corrupt copies, none written after the snapshot',
  { timeout: 300_000 },
  async () => {
    const { d, cleanup } = await startTestDeployment();
    const rnd = new SeededRandom(1313);
    try {
      await runWorkload(d.tier, d.frontdoorUrl, {
        ...DEFAULT_SPEC,
        seed: 13,
        objects: 80,
        linkRate: 0.2,
        overwriteRate: 0.05,
        deleteRate: 0.05,
        maxObjectBytes: 32 * 1024,
      });
      const before = await liveObjects(d);
      const copies = copiesOf(before).filter((c) => c.bytes > 0);
      // One node loses every file (a disk replaced empty), others lose a few.
      const wiped = [...d.nodes.keys()][rnd.int(d.nodes.size)]!;
      const deleted = [
        ...copies.filter((c) => c.node === wiped),
        ...pick(
          copies.filter((c) => c.node !== wiped),
          9,
          rnd,
        ),
      ];
      const corrupted = pick(
        copies.filter((c) => !deleted.includes(c)),
        6,
        rnd,
      );
      for (const c of deleted) fs.rmSync(fileOf(d, c));
      for (const c of corrupted) flipByte(fileOf(d, c), rnd);

      // A committed upload part with no file (excepted) and a record naming a node not deployed.
      const base = before.find((r) => (r.value.sharks ?? []).length > 0)!;
      const owner = base.value.owner;
      const partId = crypto.randomUUID();
      const ghostId = crypto.randomUUID();
      await d.tier.putObject(MANTA_BUCKET.name, `/${owner}/uploads/a1/${partId}/0`, {
        ...base.value,
        key: `/${owner}/uploads/a1/${partId}/0`,
        dirname: `/${owner}/uploads/a1/${partId}`,
        name: '0',
        objectId: partId,
      });
      const ghostKey = `/${owner}/stor/ghost-${ghostId}`;
      await d.tier.putObject(MANTA_BUCKET.name, ghostKey, {
        ...base.value,
        key: ghostKey,
        dirname: `/${owner}/stor`,
        name: `ghost-${ghostId}`,
        objectId: ghostId,
        sharks: [{ datacenter: 'dc9', manta_storage_id: '9.stor.dc9.remora.local' }],
      });

      const expectedMissing = new Set<string>();
      for (const r of before)
        for (const s of r.value.sharks ?? [])
          if (deleted.some((c) => c.objectId === r.value.objectId && c.node === s.manta_storage_id))
            expectedMissing.add(
              pKey({ objectId: r.value.objectId, node: s.manta_storage_id, key: r.key, shard: r.shard }),
            );
      const expectedCorrupt = new Set(corrupted.map((c) => `${c.objectId} ${c.node}`));

      // After every shard's snapshot, before any listing: more writes, and faults on them.
      const late: Copy[] = [];
      const jobs = jobsWithAfterSnapshots(d.config.shards.length, async () => {
        await runWorkload(
          d.tier,
          d.frontdoorUrl,
          { ...DEFAULT_SPEC, seed: 14, objects: 20, maxObjectBytes: 8 * 1024, accounts: 1 },
          { accountPrefix: 'late' },
        );
        const known = new Set(copies.map((c) => `${c.objectId}@${c.node}`));
        late.push(
          ...copiesOf(await liveObjects(d)).filter(
            (c) => c.bytes > 0 && !known.has(`${c.objectId}@${c.node}`),
          ),
        );
        for (const c of late.slice(0, 3)) fs.rmSync(fileOf(d, c));
        for (const c of late.slice(3, 5)) flipByte(fileOf(d, c), rnd);
      });
      const day = dayOf(Date.now());
      const settings = { ...PATIENT, jobs: { audit: { enabled: true, deepCycleDays: 1 } } };
      const runs = await withPipelineSession(
        d.config,
        d.tier,
        { jobs, settings, log: () => {}, internalToken: d.internalToken },
        async (rt, c) => {
          await scheduleDay(rt, day, 'test');
          return driveDays(rt, c, [day], { timeoutMs: 240_000 });
        },
      );
      assert.ok(
        runs.every((r) => r.state === 'succeeded'),
        runs.map((r) => `${r.job} ${r.partitionKey}: ${r.state} ${r.error ?? ''}`).join('\n'),
      );
      assert.ok(late.length >= 5, `late copies: ${late.length}`);
      assert.equal(runs.filter((r) => r.job === 'manifests').length, d.config.storage.nodes.length);

      const audit = runs.find((r) => r.job === 'audit')!;
      assert.equal(audit.verdict, 'degraded');
      const shown = await readAuditDay(d.tier.control, day);
      const store = (await import('../src/objectstore/object-store.js')).defaultObjectStore(
        d.config.stateDir,
      );
      const problems: Problem[] = [];
      for await (const p of readProblems(store, shown.output)) problems.push(p);

      const missing = new Set(problems.filter((p) => p.kind === 'missing').map(pKey));
      const corrupt = new Set(
        problems.filter((p) => p.kind === 'corrupt').map((p) => `${p.objectId} ${p.node}`),
      );
      const noListing = problems.filter((p) => p.kind === 'no-listing');
      const c = audit.report!.counters;
      console.log(
        `audit: ${c.recordsChecked} records, ${c.copiesChecked} copies checked; injected ${deleted.length} deleted (all of ${wiped}) ` +
          `(${expectedMissing.size} record×copy problems), ${corrupted.length} corrupted; after the snapshot ` +
          `${late.length} new copies, 3 deleted, 2 corrupted; found ${missing.size} missing, ${corrupt.size} corrupt, ` +
          `${noListing.length} no-listing; deep: ${c.deepSampled} sampled, ${c.deepHashed} hashed`,
      );
      assert.deepEqual(
        [...missing].sort(),
        [...expectedMissing].sort(),
        'exactly the injected missing copies',
      );
      assert.deepEqual(
        [...corrupt].sort(),
        [...expectedCorrupt].sort(),
        'exactly the injected corrupt copies',
      );
      assert.deepEqual(
        noListing.map((p) => [p.objectId, p.node, p.key]),
        [[ghostId, '9.stor.dc9.remora.local', ghostKey]],
      );
      assert.ok(!problems.some((p) => p.objectId === partId), 'uploads are excepted');
      assert.equal(c.uploadsExcepted, 1);
      assert.equal(shown.output.problems, problems.length);
      assert.equal(audit.report!.events['error:missing-copy']?.count, expectedMissing.size);
      assert.equal(audit.report!.events['error:corrupt-copy']?.count, expectedCorrupt.size);
      for (const p of problems.filter((x) => x.kind === 'corrupt'))
        assert.notEqual(p.expectedMd5, p.actualMd5);

      // `remora audit show` as a process: the same list, as JSON and as a table; its bad inputs.
      const remora = cliOf(d.config);
      const asJson = await remora('audit', 'show', '--date', day, '--json');
      assert.equal(asJson.code, 0, asJson.stderr);
      const doc = JSON.parse(asJson.stdout) as { verdict: string; problems: number; problemList: Problem[] };
      assert.equal(doc.verdict, 'degraded');
      assert.deepEqual(doc.problemList.map(pKey).sort(), problems.map(pKey).sort());
      const table = await remora('audit', 'show', '--date', day);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, new RegExp(`audit ${day} \\(run \\d+\\): degraded`));
      for (const p of problems) assert.ok(table.stdout.includes(p.objectId), p.objectId);
      const none = await remora('audit', 'show', '--date', addDays(day, -1));
      assert.equal(none.code, ERROR_CATALOG.UsageError.exit);
      assert.match(none.stderr, /remora: UsageError: no committed audit for/);
      const badDay = await remora('audit', 'show', '--date', '2024-13-01');
      assert.equal(badDay.code, 2);
      assert.match(badDay.stderr, /--date/);
      const noDay = await remora('audit', 'show');
      assert.equal(noDay.code, 2);
      assert.match(noDay.stderr, /--date/);
      const help = await remora('audit', 'show', '--help');
      assert.equal(help.code, 0);
      assert.match(help.stdout, /--date <day>/);
    } finally {
      await cleanup();
    }
  },
);
