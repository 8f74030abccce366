/**
 * The runner's claim (rebalance.repository.ts claimObjects): which objects a claim batch takes.
 * A claim takes, in object order and at most `limit` (and past `minObjects`, at most `maxBytes`):
 * unprocessed objects, objects assigned to a
 * runner whose lease ran out, and objects owed their tombstone MOVE (`post_processing`) last tried
 * before this run started; never a complete, skipped or errored one, never a live claim, never an
 * object for another destination when the run is limited to one. Checked against a model of that
 * rule over seeded random mixes of states, claim times and destinations, including a job whose
 * first half is done (the case a claim used to pay for by walking every finished object).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { SeededRandom } from '../src/core/clock.js';
import {
  claimObjects,
  insertJob,
  insertObjects,
  migrateRebalance,
  type NewObjectRow,
} from '../src/jobs/rebalance/rebalance.repository.js';
import { dropDatabases, testPgUrl, uniquePrefix } from './helpers/pg.js';

const STATES = ['unprocessed', 'assigned', 'post_processing', 'complete', 'skipped', 'error'] as const;
const DESTS = ['3.stor', '4.stor', '5.stor'];

interface Planted {
  objectId: string;
  state: (typeof STATES)[number];
  dest: string;
  /** Seconds before now of claimed_at (assigned, post_processing). */
  claimedAgo: number;
  bytes: number;
}

test('a claim takes exactly the claimable objects, in object order, whatever the mix', async () => {
  const prefix = uniquePrefix();
  const admin = new pg.Client({ connectionString: testPgUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${prefix}_claim`);
  await admin.end();
  const url = new URL(testPgUrl());
  url.pathname = `/${prefix}_claim`;
  const db = new pg.Pool({ connectionString: url.toString(), max: 2 });
  try {
    await migrateRebalance(db);
    const leaseMs = 30_000;
    let claims = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const rnd = new SeededRandom(seed);
      const jobId = `job-${seed}`;
      await insertJob(db, jobId, { seed }, {});
      const n = 40 + rnd.int(200);
      const halfDone = seed % 3 === 0;
      const planted: Planted[] = Array.from({ length: n }, (_, i) => ({
        objectId: `${seed}-${String(i).padStart(4, '0')}-${rnd.int(1e6)}`,
        state: halfDone && i < n / 2 ? 'complete' : STATES[rnd.int(STATES.length)]!,
        dest: DESTS[rnd.int(DESTS.length)]!,
        claimedAgo: rnd.pick([5, 20, 60, 3600]),
        bytes: rnd.pick([0, 4096, 1 << 20, 16 << 20, 1 << 30]),
      }));
      await insertObjects(db, jobId, planted.map(row));
      for (const p of planted)
        if (p.state === 'assigned' || p.state === 'post_processing')
          await db.query(
            `UPDATE rebalance_objects SET claimed_by = 'other', claimed_at = now() - make_interval(secs => $3)
              WHERE job_id = $1 AND object_id = $2`,
            [jobId, p.objectId, p.claimedAgo],
          );
      // This run started 30 s ago: a post_processing object tried before that is owed a retry.
      const runStartedAt = new Date(Date.now() - 30_000);
      const dest = seed % 2 === 0 ? DESTS[seed % DESTS.length] : undefined;
      const claimable = planted
        .filter(
          (p) =>
            (dest === undefined || p.dest === dest) &&
            (p.state === 'unprocessed' ||
              (p.state === 'assigned' && p.claimedAgo * 1000 > leaseMs) ||
              (p.state === 'post_processing' && p.claimedAgo > 30)),
        )
        .sort((a, b) => (a.objectId < b.objectId ? -1 : 1));
      const limit = 1 + rnd.int(40);
      // Half the seeds cap a claim's bytes too (past minObjects objects).
      const capped = seed % 4 < 2;
      const maxBytes = capped ? rnd.pick([1 << 20, 64 << 20, 2 << 30]) : undefined;
      const minObjects = 1 + rnd.int(8);
      /** The model: the first `limit` claimable, then the prefix within the byte cap past minObjects. */
      const expected = (from: number) => {
        const first = claimable.slice(from, from + limit);
        let running = 0;
        return first
          .filter((p, i) => {
            running += p.bytes;
            return maxBytes === undefined || i < minObjects || running <= maxBytes;
          })
          .map((p) => p.objectId);
      };
      const taken: string[] = [];
      for (;;) {
        const rows = await claimObjects(db, {
          jobId,
          runner: `r${seed}`,
          limit,
          leaseMs,
          runStartedAt,
          ...(dest ? { dest } : {}),
          ...(maxBytes !== undefined ? { maxBytes, minObjects } : {}),
        });
        claims++;
        if (rows.length === 0) break;
        assert.ok(rows.length <= limit, `seed ${seed}: ${rows.length} rows for a limit of ${limit}`);
        for (const r of rows) assert.equal(r.state, 'assigned');
        const ids = rows.map((r) => r.objectId);
        assert.deepEqual(ids, [...ids].sort(), `seed ${seed}: a batch out of object order`);
        // Each batch is the first `limit` still-claimable objects, cut to the byte cap.
        assert.deepEqual(ids, expected(taken.length), `seed ${seed}`);
        taken.push(...ids);
      }
      assert.deepEqual(
        taken,
        claimable.map((p) => p.objectId),
        `seed ${seed}: claimed ${taken.length} of ${claimable.length}`,
      );
      const held = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM rebalance_objects WHERE job_id = $1 AND claimed_by = $2`,
        [jobId, `r${seed}`],
      );
      assert.equal(Number(held.rows[0]!.n), claimable.length);
    }
    assert.ok(claims > 12);
  } finally {
    await db.end();
    await dropDatabases(prefix);
  }
});

function row(p: Planted): NewObjectRow {
  return {
    objectId: p.objectId,
    state: p.state,
    reason: null,
    detail: null,
    bytes: p.bytes,
    md5: 'x',
    copyOwner: 'owner',
    cause: 'evacuate',
    oldShark: { manta_storage_id: '1.stor', datacenter: 'dc1' },
    newShark: { manta_storage_id: p.dest, datacenter: 'dc3' },
    keys: [],
  };
}
