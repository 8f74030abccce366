/**
 * The runner's claim (rebalance.repository.ts claimObjects) at the scale of a big job: N objects
 * (REMORA_BENCH_CLAIM_OBJECTS, default 500000) of one job, with the first 0%, 50% and 99% (in
 * object order, the order claims take them) already complete. Each claim of 64 runs in a
 * transaction rolled back, so every figure is taken at the same position; median of 5. Baseline
 * in the same run: the claim as it was before (one scan with the three claimable states OR-ed),
 * which walked the primary key past every finished object.
 */
import pg from 'pg';
import { ensureBenchPostgres } from './support.js';
import { claimObjects, insertJob, migrateRebalance } from '../src/jobs/rebalance/rebalance.repository.js';

const OLD_CLAIM = `UPDATE rebalance_objects o
    SET state = 'assigned', claimed_by = $2, claimed_at = now(), updated_at = now(), attempts = o.attempts + 1
  WHERE (o.job_id, o.object_id) IN (
    SELECT job_id, object_id FROM rebalance_objects
     WHERE job_id = $1 AND ($3::text IS NULL OR dest = $3)
       AND (state = 'unprocessed'
            OR (state = 'assigned' AND claimed_at < now() - make_interval(secs => $4::float8 / 1000))
            OR (state = 'post_processing' AND claimed_at < $5))
     ORDER BY object_id LIMIT $6 FOR UPDATE SKIP LOCKED)
  RETURNING o.*`;

export default async function bench(): Promise<void> {
  const n = Number(process.env.REMORA_BENCH_CLAIM_OBJECTS ?? 500_000);
  const stop = await ensureBenchPostgres();
  const admin = new pg.Client({ connectionString: process.env.REMORA_TEST_PG_URL });
  await admin.connect();
  const dbName = `bench_claim_${process.pid}`;
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(process.env.REMORA_TEST_PG_URL!);
  url.pathname = `/${dbName}`;
  const db = new pg.Client({ connectionString: url.toString() });
  await db.connect();
  try {
    await migrateRebalance(db);
    await insertJob(db, 'j', { bench: true }, {});
    await db.query(
      `INSERT INTO rebalance_objects (job_id, object_id, state, bytes, md5, copy_owner, keys, dest, old_shark, new_shark)
       SELECT 'j', md5(g::text), 'unprocessed', 4096, 'x', 'owner', '[{"key":"/a/stor/x","shard":"1.moray"}]',
              'd' || (g % 5), '{"manta_storage_id":"s","datacenter":"dc1"}', '{"manta_storage_id":"d","datacenter":"dc2"}'
         FROM generate_series(1, $1::int) g`,
      [n],
    );
    console.log(`rebalance claim of 64, job of ${n} objects (median of 5, ms):`);
    let done = 0;
    for (const pct of [0, 50, 99]) {
      const target = Math.floor((n * pct) / 100);
      if (target > done) {
        await db.query(
          `UPDATE rebalance_objects SET state = 'complete' WHERE job_id = 'j' AND object_id IN (
             SELECT object_id FROM rebalance_objects WHERE job_id = 'j' AND state = 'unprocessed'
              ORDER BY object_id LIMIT $1)`,
          [target - done],
        );
        done = target;
      }
      await db.query('VACUUM ANALYZE rebalance_objects');
      const args = ['j', 'bench', null, 30_000, new Date(), 64];
      const timeOf = async (claim: () => Promise<number>) => {
        const ms: number[] = [];
        for (let i = 0; i < 5; i++) {
          await db.query('BEGIN');
          const t0 = performance.now();
          const rows = await claim();
          ms.push(performance.now() - t0);
          await db.query('ROLLBACK');
          if (rows !== 64) throw new Error(`claimed ${rows}`);
        }
        return ms.sort((a, b) => a - b)[2]!;
      };
      const old = await timeOf(async () => (await db.query(OLD_CLAIM, args)).rowCount ?? 0);
      const now = await timeOf(
        async () =>
          (
            await claimObjects(db, {
              jobId: 'j',
              runner: 'bench',
              limit: 64,
              leaseMs: 30_000,
              runStartedAt: new Date(),
            })
          ).length,
      );
      console.log(
        `  ${String(pct).padStart(2)}% done: before ${old.toFixed(2).padStart(8)}  now ${now.toFixed(2).padStart(6)}  ` +
          `(${(old / now).toFixed(1)}× faster)`,
      );
    }
  } finally {
    await db.end();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    await stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await bench();
