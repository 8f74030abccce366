/**
 * Cruft end to end on real parts, `remora cruft plan | run` as processes. A workload through the
 * front door (overwrites and deletes leave copies that delete records still reference), then
 * on the nodes' disks, seeded:
 *   - old strays (mtime 10 days back): UUID files no record names, including the leftovers of
 *     failed uploads (a copy written, its record never) → cruft, moved to tombstone
 *   - new strays (mtime now) → too new, never touched
 *   - old mtimes on copies of live objects and on copies only a delete record references
 *     (invariant 4: referenced by a live or delete-log record) → never touched
 *   - an old nginx_temp file (an upload in flight when a node died) → not a copy, never touched
 *   - an old stray whose objectId gets a live record after the snapshots → refused by the re-check
 * Cruft must tombstone exactly the old strays, and the plan must move nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SeededRandom } from '../src/core/clock.js';
import { addDays, DAY_MS, dayOf } from '../src/core/days.js';
import { ERROR_CATALOG } from '../src/core/errors.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { DELETE_LOG_BUCKET, MANTA_BUCKET } from '../src/metadata/buckets.js';
import { listAll } from '../src/metadata/moray.repository.js';
import type { MantaObjectValue, MantaValue } from '../src/metadata/types.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { withPipelineSession } from '../src/pipeline/session.js';
import { runWorkload } from '../src/workload/driver.js';
import { DEFAULT_SPEC } from '../src/workload/generator.js';
import { startTestDeployment } from './helpers/deployment.js';
import { cliOf, jobsWithHookBeforeListings, PATIENT } from './helpers/audit-world.js';

/** Every UUID file on every node: `node/dir/oid`; tombstoned `node/oid`. */
function onDisk(d: Deployment) {
  const copies = new Set<string>();
  const tombstoned = new Set<string>();
  for (const [id, n] of d.nodes)
    for (const dir of fs.readdirSync(n.root)) {
      const p = path.join(n.root, dir);
      if (dir === 'tombstone') {
        for (const day of fs.readdirSync(p))
          for (const oid of fs.readdirSync(path.join(p, day))) tombstoned.add(`${id}/${oid}`);
      } else if (/^[0-9a-f-]{36}$/.test(dir))
        for (const oid of fs.readdirSync(p)) copies.add(`${id}/${dir}/${oid}`);
    }
  return { copies, tombstoned };
}

function writeFile(file: string, bytes: number, mtimeMs: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, crypto.randomBytes(bytes));
  fs.utimesSync(file, mtimeMs / 1000, mtimeMs / 1000);
}

test(
  'cruft tombstones exactly the old strays: never a referenced file, a new one or a temp file',
  { timeout: 300_000 },
  async () => {
    const { d, cleanup } = await startTestDeployment();
    const rnd = new SeededRandom(77);
    try {
      await runWorkload(d.tier, d.frontdoorUrl, {
        ...DEFAULT_SPEC,
        seed: 17,
        objects: 60,
        overwriteRate: 0.2,
        deleteRate: 0.2,
        linkRate: 0.1,
        maxObjectBytes: 8192,
      });
      const now = Date.now();
      const old = now - 10 * DAY_MS;
      const nodeIds = [...d.nodes.keys()];
      const live: MantaObjectValue[] = [];
      const deleted: MantaObjectValue[] = [];
      for (const s of d.tier.indexShards) {
        for (const r of await listAll<MantaValue>(s.pool, MANTA_BUCKET))
          if (r.value.type === 'object') live.push(r.value);
        for (const r of await listAll<MantaObjectValue>(s.pool, DELETE_LOG_BUCKET)) deleted.push(r.value);
      }
      const fileOf = (node: string, v: MantaObjectValue) =>
        path.join(d.nodes.get(node)!.root, v.creator || v.owner, v.objectId);
      // Referenced files made old: copies of live objects, and copies only a delete record names.
      const referencedOld: string[] = [];
      for (const v of [...live.slice(0, 10), ...deleted.slice(0, 10)])
        for (const s of v.sharks) {
          const f = fileOf(s.manta_storage_id, v);
          if (!fs.existsSync(f)) continue;
          fs.utimesSync(f, old / 1000, old / 1000);
          referencedOld.push(`${s.manta_storage_id}/${v.creator || v.owner}/${v.objectId}`);
        }
      assert.ok(referencedOld.length > 10, `${referencedOld.length}`);
      const owner = live[0]!.owner;
      const stray = (mtime: number) => {
        const node = nodeIds[rnd.int(nodeIds.length)]!;
        const oid = crypto.randomUUID();
        writeFile(path.join(d.nodes.get(node)!.root, owner, oid), 100 + rnd.int(5000), mtime);
        return `${node}/${owner}/${oid}`;
      };
      const oldStrays = Array.from({ length: 8 }, () => stray(old));
      // Failed uploads: the copy landed on one node and its record was never written.
      const failedUploads = Array.from({ length: 3 }, () => stray(old - DAY_MS));
      const newStrays = Array.from({ length: 5 }, () => stray(now));
      const raced = stray(old);
      const tempFile = path.join(
        d.nodes.get(nodeIds[0]!)!.root,
        'nginx_temp',
        `${crypto.randomUUID()}.partial`,
      );
      writeFile(tempFile, 300, old);
      const jobs = jobsWithHookBeforeListings(async () => {
        // After every snapshot: a record now names the raced stray (a link, say).
        const oid = raced.split('/')[2]!;
        const key = `/${owner}/stor/raced-${oid}`;
        await d.tier.putObject(MANTA_BUCKET.name, key, {
          ...live[0]!,
          key,
          name: `raced-${oid}`,
          dirname: `/${owner}/stor`,
          objectId: oid,
          sharks: [{ datacenter: 'dc1', manta_storage_id: raced.split('/')[0]! }],
        });
      });
      const day = dayOf(now);
      const runs = await withPipelineSession(
        d.config,
        d.tier,
        { jobs, settings: PATIENT, log: () => {}, internalToken: d.internalToken },
        async (rt, c) => {
          await scheduleDay(rt, day, 'test');
          return driveDays(rt, c, [day], { timeoutMs: 240_000 });
        },
      );
      assert.ok(
        runs.every((r) => r.state === 'succeeded'),
        runs.map((r) => `${r.job} ${r.state} ${r.error ?? ''}`).join('\n'),
      );

      const remora = cliOf(d.config);

      const before = onDisk(d);
      const planned = await remora('cruft', 'plan', '--date', day, '--json');
      assert.equal(planned.code, 0, planned.stderr);
      const plan = JSON.parse(planned.stdout) as { report: { counters: Record<string, number> } };
      const expected = [...oldStrays, ...failedUploads];
      assert.equal(plan.report.counters.cruftFiles, expected.length, JSON.stringify(plan.report.counters));
      assert.equal(plan.report.counters.refusedReferencedNow, 1);
      assert.deepEqual(onDisk(d), before, 'a plan moves nothing');

      const ran = await remora('cruft', 'run', '--date', day);
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, new RegExp(`cruft run for ${day}`));
      assert.match(ran.stdout, /refused-referenced-now/);
      const after = onDisk(d);
      const gone = [...before.copies].filter((c) => !after.copies.has(c)).sort();
      console.log(
        `cruft: ${expected.length} old strays (${failedUploads.length} failed uploads), ${newStrays.length} new strays, ` +
          `${referencedOld.length} old referenced copies, 1 raced; moved ${gone.length}\n${ran.stdout}`,
      );
      assert.deepEqual(gone, [...expected].sort(), 'exactly the old strays left their place');
      for (const c of expected)
        assert.ok(after.tombstoned.has(`${c.split('/')[0]}/${c.split('/')[2]}`), `${c} in tombstone`);
      for (const c of [...newStrays, raced, ...referencedOld])
        assert.ok(after.copies.has(c), `${c} untouched`);
      assert.ok(fs.existsSync(tempFile), 'the temp file is not a copy');

      const again = await remora('cruft', 'run', '--date', day, '--json');
      assert.equal(again.code, 0, again.stderr);
      const c2 = (JSON.parse(again.stdout) as { report: { counters: Record<string, number> } }).report
        .counters;
      assert.equal(c2.copiesTombstoned ?? 0, 0, 'a second run moves nothing');
      assert.equal(
        c2.copiesAlreadyGone,
        expected.length,
        'its listing is the same day: the files are already gone',
      );

      const none = await remora('cruft', 'plan', '--date', addDays(day, -1));
      assert.equal(none.code, ERROR_CATALOG.UsageError.exit);
      assert.match(none.stderr, /remora: UsageError: no committed unpack of/);
      const noDay = await remora('cruft', 'run');
      assert.equal(noDay.code, 2);
      assert.match(noDay.stderr, /--date/);
      const help = await remora('cruft', '--help');
      assert.equal(help.code, 0);
      assert.match(help.stdout, /plan/);
      assert.match(help.stdout, /run/);
    } finally {
      await cleanup();
    }
  },
);
