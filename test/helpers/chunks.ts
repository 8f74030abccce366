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
