import type { MetadataTier } from '../metadata/metadata-tier.js';
import { bucketDdl, columnOf, DELETE_LOG_BUCKET, MANTA_BUCKET } from '../metadata/buckets.js';

/**
 * Loading into empty `manta` tables is several times faster without their secondary indexes;
 * they are rebuilt once at the end (the same DDL the tier applies at open). Tables that
 * already hold rows keep their indexes: a live deployment is never left without them.
 */
export async function deferIndexes(tier: MetadataTier): Promise<string[]> {
  const deferred: string[] = [];
  for (const s of tier.indexShards) {
    const empty = (await s.pool.query('SELECT 1 FROM manta LIMIT 1')).rowCount === 0;
    if (!empty) continue;
    for (const b of [MANTA_BUCKET, DELETE_LOG_BUCKET]) {
      for (const i of b.index) await s.pool.query(`DROP INDEX IF EXISTS ${b.name}_${columnOf(i.field)}_idx`);
    }
    deferred.push(s.name);
  }
  return deferred;
}

export async function restoreIndexes(tier: MetadataTier, shards: string[]): Promise<void> {
  await Promise.all(
    shards.map(async (name) => {
      const pool = tier.shard(name).pool;
      for (const b of [MANTA_BUCKET, DELETE_LOG_BUCKET])
        for (const stmt of bucketDdl(b)) await pool.query(stmt);
      await pool.query('ANALYZE manta');
    }),
  );
}
