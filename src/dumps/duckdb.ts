/**
 * DuckDB instances for writing and reading chunks. Extension auto-install and auto-load are
 * off: nothing may be downloaded at run time (DEPENDENCY-NOTES "DuckDB"); JSON and Parquet
 * are built in. Memory: DuckDB's real use runs above `memory_limit`, so the limit is set
 * well under the 500 MB budget of a task.
 */
import os from 'node:os';
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

/**
 * The process's DuckDB for jobs that read chunks: one instance, opened on first use and closed
 * by `close()` (the pipeline session closes it on stop). Opening an instance per task cost
 * ~60 ms, as much as scanning a 60k-record partition.
 *
 * One query at a time, with every core: a worker runs `concurrency` tasks at once, but their
 * queries take turns here (the rest of a task — its inputs, its output write — overlaps the
 * other's query). Measured (docs/pipeline.md "Bench"): two concurrent one-thread scans held two
 * partitions' hash tables at once and left each query's freed memory in a different allocator
 * arena, so peak RSS crept up with the number of tasks; one two-thread scan at a time was flat
 * at about the same CPU per record.
 */
export class DuckPool {
  private shared: ReturnType<typeof openDuck> | undefined;
  private turn: Promise<void> = Promise.resolve();

  constructor(private readonly opts: DuckOptions = {}) {}

  private async connect(): Promise<DuckDBConnection> {
    this.shared ??= openDuck({ memoryLimit: '256MB', threads: os.availableParallelism(), ...this.opts });
    try {
      return await (await this.shared).instance.connect();
    } catch (err) {
      this.shared = undefined;
      throw err;
    }
  }

  /**
   * Run `fn` with a connection once the queries queued before it are done. `queued` is called
   * when the wait ends (a report phase, so time spent waiting is visible).
   */
  async run<T>(fn: (conn: DuckDBConnection) => Promise<T>, queued?: () => void): Promise<T> {
    const before = this.turn;
    let done!: () => void;
    this.turn = new Promise<void>((resolve) => (done = resolve));
    await before;
    try {
      queued?.();
      const conn = await this.connect();
      try {
        return await fn(conn);
      } finally {
        conn.closeSync();
      }
    } finally {
      done();
    }
  }

  /** Close the instance; a later `run` opens a new one. */
  async close(): Promise<void> {
    const s = this.shared;
    this.shared = undefined;
    if (s) (await s).close();
  }
}
