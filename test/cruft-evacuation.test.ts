/**
 * Issue 13: `rebalance verify` and cruft together tell an operator a node is empty. A workload
 * leaves copies on node N that only delete records name (objects overwritten and deleted), plus
 * an old stray file (cruft) and a fresh one (too new). N is evacuated by the README's procedure,
 * as CLI processes (disable writes, snapshot + unpack, plan, run, verify → SAFE TO REMOVE). Then
 * the day's pipeline (snapshots, then listings: invariant 5) and `remora cruft plan` must account
 * for every file of N's listing: live 0, gc-pending exactly the copies delete records name
 * (computed here from the metadata and N's disk), too-new the fresh stray, cruft the old one. Then
 * GC past its grace (graceDays 0), the stray aged and N listed again, `remora cruft run`: N holds
 * nothing outside tombstone (its directory walked on disk).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DAY_MS, dayOf } from '../src/core/days.js';
import { defaultJobs } from '../src/jobs/catalog.js';
import type { CruftDay } from '../src/jobs/cruft/cruft.service.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import { driveDays, rerun, scheduleDay } from '../src/pipeline/operations.js';
import type { PipelineRuntime } from '../src/pipeline/runtime.js';
import type { PipelineSettings } from '../src/pipeline/settings.js';
import { withPipelineSession } from '../src/pipeline/session.js';
import { PATIENT } from './helpers/audit-world.js';
import { runCli } from './helpers/cli.js';
import { testConfig } from './helpers/pg.js';
import { liveObjectRecords, startCliDeployment } from './helpers/rebalance.js';

const NODE = '3.stor.dc3.remora.local';
const LAG_MS = 3000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every file under a node's root, relative (`<dir>/<objectId>`, `tombstone/<day>/<objectId>`, …). */
function walk(root: string): { rel: string; bytes: number }[] {
  return fs
    .readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => {
      const full = path.join(e.parentPath, e.name);
      return { rel: path.relative(root, full), bytes: fs.statSync(full).size };
    });
}

/** The copies on a node's disk as the listing keeps them: `/<uuid>/<uuid>` files. */
const copiesOn = (root: string) =>
  walk(root).filter((f) => {
    const [dir, oid, more] = f.rel.split(path.sep);
    return more === undefined && UUID.test(dir ?? '') && UUID.test(oid ?? '');
  });

test(
  'after an evacuation, cruft accounts for every file left on the node; GC and cruft then empty it',
  { timeout: 600_000 },
  async () => {
    const { d, cleanup, alice, owner } = await startCliDeployment({
      picker: { ...testConfig().picker, lagMs: LAG_MS },
    });
    const root = d.nodes.get(NODE)!.root;
    const cli = async (...args: string[]) => {
      const r = await runCli(d.config.stateDir, args, { timeoutMs: 180_000 });
      assert.equal(r.status, 0, `remora ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    try {
      // A workload: objects, then those with a copy on N overwritten or deleted (their previous
      // records go to the delete log, naming the copies on N), others kept live.
      await alice.mkdirp('/alice/stor/w');
      for (let i = 0; i < 40; i++) await alice.put(`/alice/stor/w/o${i}`, crypto.randomBytes(500 + i * 97));
      const onN = (await liveObjectRecords(d))
        .filter((r) => r.value.sharks.some((s) => s.manta_storage_id === NODE))
        .map((r) => r.key.replace(`/${owner}/`, '/alice/'));
      assert.ok(onN.length >= 6, `copies on ${NODE}: ${onN.length}`);
      for (const [i, k] of onN.entries())
        if (i % 3 === 0) await alice.put(k, crypto.randomBytes(700));
        else if (i % 3 === 1) await alice.delete(k);
      // Strays on N: one old (cruft), one fresh (too new). Written before writes are disabled,
      // so the snapshot is after N's last write.
      const stray = (mtimeMs: number, bytes: number) => {
        const oid = crypto.randomUUID();
        const file = path.join(root, owner, oid);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, crypto.randomBytes(bytes));
        fs.utimesSync(file, mtimeMs / 1000, mtimeMs / 1000);
        return { oid, bytes, file };
      };
      const old = Date.now() - 10 * DAY_MS;
      // Every copy on N made old (live ones, and those only a delete record names): only the
      // references keep them from being cruft (invariant 4), not their age.
      for (const f of copiesOn(root)) fs.utimesSync(path.join(root, f.rel), old / 1000, old / 1000);
      const oldStray = stray(old, 1234);
      const newStray = stray(Date.now(), 4321);

      // The README's evacuation, as processes.
      await cli('storage', 'disable-writes', NODE);
      await new Promise((r) => setTimeout(r, LAG_MS + 500));
      await cli('snapshot', '--unpack');
      await cli('rebalance', 'plan', '--evacuate', NODE);
      await cli('rebalance', 'run', '--concurrency', '8');
      const verified = await cli('rebalance', 'verify', '--node', NODE);
      assert.match(verified, new RegExp(`^SAFE TO REMOVE ${NODE.replace(/\./g, '\\.')}:`, 'm'));
      assert.match(verified, /^next: .*remora cruft plan --date <day>/m, 'verify points at cruft');

      // What is left on N, computed from the metadata and N's disk: copies only delete records name.
      const live = new Set<string>();
      const deleted = new Map<string, number>(); // objectId → newest delete record (_mtime) naming N
      const newest = new Map<string, number>(); // objectId → newest delete record of any node
      for (const s of d.tier.indexShards) {
        for (const r of (
          await s.pool.query<{ _value: string }>(`SELECT _value FROM manta WHERE type = 'object'`)
        ).rows)
          live.add((JSON.parse(r._value) as MantaObjectValue).objectId);
        for (const r of (
          await s.pool.query<{ _value: string; _mtime: string }>(
            'SELECT _value, _mtime FROM manta_delete_log',
          )
        ).rows) {
          const v = JSON.parse(r._value) as MantaObjectValue;
          const ms = Number(r._mtime);
          newest.set(v.objectId, Math.max(newest.get(v.objectId) ?? 0, ms));
          if (v.sharks.some((x) => x.manta_storage_id === NODE)) deleted.set(v.objectId, 0);
        }
      }
      for (const oid of deleted.keys()) deleted.set(oid, newest.get(oid)!);
      const files = copiesOn(root);
      const oidOf = (f: { rel: string }) => f.rel.split(path.sep)[1]!;
      const gcPending = files.filter((f) => deleted.has(oidOf(f)) && !live.has(oidOf(f)));
      assert.ok(gcPending.length >= 4, `copies only delete records name: ${gcPending.length}`);
      assert.deepEqual(
        files
          .filter((f) => !gcPending.includes(f))
          .map(oidOf)
          .sort(),
        [oldStray.oid, newStray.oid].sort(),
        'after the evacuation N holds only delete-logged copies and the two strays',
      );

      // The day's pipeline: snapshots, then listings (invariant 5); gc with its default grace.
      const day = dayOf(Date.now());
      const drive = (settings: Partial<PipelineSettings>, fn: (rt: PipelineRuntime) => Promise<unknown>) =>
        withPipelineSession(
          d.config,
          d.tier,
          { jobs: defaultJobs, settings, log: () => {}, internalToken: d.internalToken },
          async (rt, c) => {
            await fn(rt);
            const runs = await driveDays(rt, c, [day], { timeoutMs: 240_000 });
            assert.ok(
              runs.every((r) => r.state === 'succeeded'),
              runs.map((r) => `${r.job} ${r.partitionKey} ${r.state} ${r.error ?? ''}`).join('\n'),
            );
          },
        );
      await drive(PATIENT, (rt) => scheduleDay(rt, day, 'test'));

      const plan = JSON.parse(await cli('--json', 'cruft', 'plan', '--date', day)) as CruftDay;
      const n = plan.nodes.find((x) => x.node === NODE);
      assert.ok(n, JSON.stringify(plan.nodes));
      const sum = (fs_: { bytes: number }[]) => fs_.reduce((a, f) => a + f.bytes, 0);
      const listing = plan.listings.find((l) => l.node === NODE)!;
      assert.equal(n.listed.files, files.length, 'the listing is the disk');
      assert.equal(listing.files, files.length);
      assert.equal(
        n.live.files + n.gcPending.files + n.tooNew.files + n.cruft.files,
        n.listed.files,
        'every listed file in exactly one class',
      );
      assert.equal(n.live.bytes + n.gcPending.bytes + n.tooNew.bytes + n.cruft.bytes, n.listed.bytes);
      assert.deepEqual(n.live, { files: 0, bytes: 0, notNamedHere: 0 }, 'nothing live is left on N');
      assert.equal(n.gcPending.files, gcPending.length, 'gc-pending: the copies delete records name');
      assert.equal(n.gcPending.bytes, sum(gcPending));
      assert.equal(n.gcPending.notNamedHere, 0);
      const lastDelete = Math.max(...gcPending.map((f) => deleted.get(oidOf(f))!));
      const firstDelete = Math.min(...gcPending.map((f) => deleted.get(oidOf(f))!));
      const grace = 2 * DAY_MS;
      assert.equal(n.gcPending.gcAllFrom, new Date(lastDelete + grace).toISOString());
      assert.equal(n.gcPending.gcFrom, new Date(firstDelete + grace).toISOString());
      assert.deepEqual(n.tooNew, { files: 1, bytes: newStray.bytes }, 'too new: the fresh stray');
      assert.deepEqual(n.cruft, { files: 1, bytes: oldStray.bytes }, 'cruft: the old stray');
      assert.equal(plan.report.counters[`cruftFiles.${NODE}`], 1);
      // Every other node: its classes add up too.
      for (const x of plan.nodes)
        assert.equal(
          x.live.files + x.gcPending.files + x.tooNew.files + x.cruft.files,
          x.listed.files,
          x.node,
        );
      const text = await cli('cruft', 'plan', '--date', day);
      const row = text.split('\n').find((l) => l.includes(NODE) && l.includes('(') && !l.includes(':'));
      assert.ok(row, text);
      assert.match(text, /live \+ gc-pending \+ too-new \+ cruft = listed/);
      assert.match(
        text,
        new RegExp(
          `${NODE.replace(/\./g, '\\.')}: ${gcPending.length} gc-pending file\\(s\\) .*past gc's grace \\(2 days.*from ${new Date(firstDelete + grace).toISOString()}`,
        ),
      );
      console.log(`cruft plan after evacuating ${NODE}:\n${text}`);

      // GC past its grace (the demo's graceDays 0), the fresh stray aged, N listed again.
      await drive({ ...PATIENT, jobs: { gc: { graceDays: 0 } } as PipelineSettings['jobs'] }, async (rt) => {
        await rerun(rt, 'gc', day, { downstream: false, dryRun: false });
      });
      for (const f of gcPending)
        assert.ok(!fs.existsSync(path.join(root, f.rel)), `${f.rel}: gc tombstoned it`);
      fs.utimesSync(newStray.file, old / 1000, old / 1000);
      await drive(PATIENT, async (rt) => {
        await rerun(rt, 'manifests', day, { downstream: false, dryRun: false });
      });
      const ran = JSON.parse(await cli('--json', 'cruft', 'run', '--date', day)) as CruftDay;
      const m = ran.nodes.find((x) => x.node === NODE)!;
      assert.deepEqual(m.cruft, { files: 2, bytes: oldStray.bytes + newStray.bytes });
      assert.equal(m.listed.files, 2);
      assert.equal(ran.report.counters[`copiesTombstoned.${NODE}`], 2);

      // N's disk: nothing outside tombstone.
      assert.deepEqual(
        walk(root)
          .map((f) => f.rel)
          .filter((r) => !r.startsWith(`tombstone${path.sep}`)),
        [],
        `${NODE} holds nothing outside tombstone`,
      );
      const tomb = walk(root).filter((f) => f.rel.startsWith(`tombstone${path.sep}`));
      for (const oid of [...gcPending.map(oidOf), oldStray.oid, newStray.oid])
        assert.ok(
          tomb.some((f) => f.rel.endsWith(`${path.sep}${oid}`)),
          `${oid} in tombstone`,
        );
    } finally {
      await cleanup();
    }
  },
);
