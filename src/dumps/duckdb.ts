/**
 * DuckDB instances for writing and reading chunks. Extension auto-install and auto-load are
 * off: nothing may be downloaded at run time (DEPENDENCY-NOTES "DuckDB"); JSON and Parquet
 * are built in. Memory: DuckDB's real use runs above `memory_limit`, so the limit is set
 * well under the 500 MB budget of a task.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

export interface DuckOptions {
  /** DuckDB `memory_limit` (default 256MB). */
  memoryLimit?: string;
  /** Worker threads (default 2: the machine's cores). */
  threads?: number;
  /** Where DuckDB may spill. */
  tempDirectory?: string;
}

export async function openDuck(
  opts: DuckOptions = {},
): Promise<{ conn: DuckDBConnection; instance: DuckDBInstance; close: () => void }> {
  const config: Record<string, string> = {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
    memory_limit: opts.memoryLimit ?? '256MB',
    threads: String(opts.threads ?? 2),
    // Chunk rows need no global order; dropping it lets DuckDB stream with less memory.
    preserve_insertion_order: 'false',
  };
  if (opts.tempDirectory) config.temp_directory = opts.tempDirectory;
  const instance = await DuckDBInstance.create(':memory:', config);
  const conn = await instance.connect();
  return {
    conn,
    instance,
    close: () => {
      conn.closeSync();
      instance.closeSync();
    },
  };
}

/** A SQL string literal. */
export function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}
