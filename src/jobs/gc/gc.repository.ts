/**
 * GC's reads of live metadata that are not moray operations: one function per statement.
 *
 *   deleteLogPage   one page of a shard's `manta_delete_log`, in `_key` order after a key (keyset
 *                   pagination: memory is one page, whatever the log's size), for `gc status`
 */
import type { Queryable } from '../../metadata/moray.repository.js';
import type { DeleteRecord } from './gc.plan.js';

export async function deleteLogPage(
  db: Queryable,
  shard: string,
  afterKey: string | undefined,
  limit: number,
): Promise<(DeleteRecord & { objectId: string | null })[]> {
  const r = await db.query<{
    _key: string;
    _value: string;
    _etag: string;
    _mtime: string;
    objectid: string | null;
  }>(
    `SELECT _key, _value, _etag, _mtime, objectid FROM manta_delete_log
      WHERE ($1::text IS NULL OR _key > $1) ORDER BY _key LIMIT $2`,
    [afterKey ?? null, limit],
  );
  return r.rows.map((row) => ({
    shard,
    key: row._key,
    etag: row._etag,
    mtime: Number(row._mtime),
    value: row._value,
    objectId: row.objectid,
  }));
}
