/** Test helpers for dumps: read chunk rows back through DuckDB. */
import type { Json } from '@duckdb/node-api';
import { openDuck, sqlString } from '../../src/dumps/duckdb.js';
import type { LocalObjectStore } from '../../src/objectstore/object-store.js';

export type ChunkRow = Record<string, Json>;

/** Every row of the given chunk paths, as JSON-able objects (BIGINT as strings). */
export async function readChunkRows(store: LocalObjectStore, paths: string[]): Promise<ChunkRow[]> {
  if (paths.length === 0) return [];
  const duck = await openDuck();
  try {
    const files = paths.map((p) => sqlString(store.localPath(p))).join(', ');
    const r = await duck.conn.runAndReadAll(`SELECT * FROM read_parquet([${files}], union_by_name = true)`);
    return r.getRowObjectsJson();
  } finally {
    duck.close();
  }
}

/** One row of a hand-made `manta` chunk: owner, objectId, key, type, namespace, contentLength, copies. */
export type MantaChunkRow = [
  string | null,
  string | null,
  string,
  string,
  string | null,
  number | null,
  number | null,
];

/** Write hand-made `manta` rows as a Parquet chunk with the columns the metering scan reads. */
export async function writeMantaChunk(file: string, rows: MantaChunkRow[]): Promise<void> {
  const writer = await openDuck({ threads: 1 });
  try {
    const values = rows
      .map(
        (r) =>
          `(${r.map((v) => (v === null ? 'NULL' : typeof v === 'number' ? String(v) : sqlString(v))).join(', ')})`,
      )
      .join(', ');
    await writer.conn.run(
      `COPY (SELECT owner, objectId, key, type, namespace, contentLength::BIGINT AS contentLength,
          copies::INTEGER AS copies, true AS value_ok, key AS _key, '{"key":' || to_json(key) || '}' AS _value,
          's' AS shard
        FROM (VALUES ${values}) t(owner, objectId, key, type, namespace, contentLength, copies))
       TO ${sqlString(file)} (FORMAT parquet)`,
    );
  } finally {
    writer.close();
  }
}
