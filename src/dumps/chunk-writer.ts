/**
 * Writes one table's rows as Parquet chunks partitioned by partitionOf(partition key, P).
 *
 * Rows are appended to one intermediate CSV per partition (1 MB write buffers). Every
 * `segmentRows` rows the segment is closed and converted to Parquet by DuckDB in the
 * background while the next segment fills: Node parses, DuckDB converts, on two cores. At most
 * one segment is converting, so memory is bounded by the write buffers, one DuckDB COPY and
 * the input stream — not by the table. Each (partition, segment) becomes one chunk.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { partitionOf } from './partition.js';
import { chunkPath } from './layout.js';
import { adoptFile, type ObjectStore } from './object-store.js';
import { readCsvSql, type TableSpec } from './table-specs.js';
import { sqlString } from './duckdb.js';
import type { ReportBuilder } from './report.js';

export interface ChunkInfo {
  path: string;
  partition: number;
  segment: number;
  rows: number;
  bytes: number;
  sha256: string;
}

export interface ChunkContext {
  store: ObjectStore;
  duck: DuckDBConnection;
  /** Serializes every DuckDB statement of the run (one connection). */
  serial: <T>(fn: () => Promise<T>) => Promise<T>;
  report: ReportBuilder;
  workDir: string;
  partitions: number;
  segmentRows: number;
  day: string;
  source: string;
  runId: string;
}

/** Bytes buffered per partition before a write: few syscalls, bounded memory (P × 1 MB). */
const WRITE_BUFFER_BYTES = 1 << 20;

/**
 * One partition's write buffer. Rows are encoded straight into bytes: building CSV lines as
 * JS strings and joining them cost more in GC than everything else together.
 */
class CsvBuffer {
  private buf = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  private off = 0;
  fd: number | undefined;

  constructor(private readonly file: () => string) {}

  /** Append one CSV row: NULL as an empty field, values quoted with `"` doubled. */
  append(values: (string | null)[]): void {
    let need = 1;
    for (const v of values) need += v === null ? 1 : v.length * 3 + 3;
    if (this.off + need > this.buf.length) {
      this.flush();
      if (need > this.buf.length) this.buf = Buffer.allocUnsafe(need);
    }
    const b = this.buf;
    let o = this.off;
    for (let i = 0; i < values.length; i++) {
      if (i > 0) b[o++] = 0x2c;
      const v = values[i];
      if (v === null || v === undefined) continue;
      b[o++] = 0x22;
      o += b.write(v.includes('"') ? v.replaceAll('"', '""') : v, o, 'utf8');
      b[o++] = 0x22;
    }
    b[o++] = 0x0a;
    this.off = o;
  }

  flush(): void {
    if (this.off === 0) return;
    this.fd ??= fs.openSync(this.file(), 'w');
    fs.writeSync(this.fd, this.buf, 0, this.off);
    this.off = 0;
  }

  close(): void {
    this.flush();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

export class PartitionedChunkWriter {
  private segment = 0;
  private segmentRowCount = 0;
  private readonly buffers: CsvBuffer[] = [];
  private readonly rowsPerPartition: number[] = [];
  private pending: Promise<void> = Promise.resolve();
  readonly chunks: ChunkInfo[] = [];
  rows = 0;

  constructor(
    readonly spec: TableSpec,
    private readonly ctx: ChunkContext,
  ) {
    for (let p = 0; p < ctx.partitions; p++) {
      this.buffers.push(new CsvBuffer(() => this.csvFile(this.segment, p)));
      this.rowsPerPartition.push(0);
    }
  }

  /** Add one dump row (already decoded). */
  add(values: (string | null)[]): void {
    const p = partitionOf(this.spec.partitionKey(values), this.ctx.partitions);
    this.buffers[p]!.append(this.spec.project(values));
    this.rowsPerPartition[p]!++;
    this.segmentRowCount++;
    this.rows++;
  }

  /** Between input chunks: rotate a full segment and hand it to DuckDB. */
  async drain(): Promise<void> {
    if (this.segmentRowCount >= this.ctx.segmentRows) await this.rotate();
  }

  async finish(): Promise<ChunkInfo[]> {
    if (this.segmentRowCount > 0) await this.rotate();
    await this.pending;
    this.chunks.sort((a, b) => a.partition - b.partition || a.segment - b.segment);
    return this.chunks;
  }

  /** Close files without converting (the run failed). */
  abort(): void {
    for (const b of this.buffers) if (b.fd !== undefined) fs.closeSync(b.fd);
  }

  private csvFile(segment: number, p: number): string {
    return path.join(this.ctx.workDir, `${this.spec.table}-s${segment}-p${p}.csv`);
  }

  private async rotate(): Promise<void> {
    for (const b of this.buffers) b.close();
    const segment = this.segment;
    const rows = [...this.rowsPerPartition];
    this.segment++;
    this.segmentRowCount = 0;
    this.rowsPerPartition.fill(0);
    // One conversion in flight; a failure surfaces at the next rotate or at finish().
    await this.pending;
    const next = this.convertSegment(segment, rows);
    next.catch(() => {});
    this.pending = next;
  }

  private async convertSegment(segment: number, rows: number[]): Promise<void> {
    for (let p = 0; p < rows.length; p++) {
      if (rows[p] === 0) continue;
      const csv = this.csvFile(segment, p);
      const out = path.join(this.ctx.workDir, `${this.spec.table}-s${segment}-p${p}.parquet`);
      const sql = this.spec.select(readCsvSql(csv, this.spec.csvColumns), this.ctx.source);
      await this.ctx.serial(() =>
        this.ctx.duck.run(
          `COPY (${sql}) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, DICTIONARY_SIZE_LIMIT 1, ROW_GROUP_SIZE 100000, ROW_GROUP_SIZE_BYTES 33554432)`,
        ),
      );
      await fs.promises.rm(csv, { force: true });
      if (this.spec.checksValues) await this.reportBadValues(out);
      const objectPath = chunkPath(
        this.ctx.day,
        this.ctx.source,
        this.ctx.runId,
        this.spec.table,
        p,
        segment,
      );
      const put = await adoptFile(this.ctx.store, objectPath, out);
      this.chunks.push({
        path: objectPath,
        partition: p,
        segment,
        rows: rows[p]!,
        bytes: put.bytes,
        sha256: put.sha256,
      });
    }
  }

  /** Rows whose `_value` is not JSON are kept (raw `_value`, typed columns NULL) and reported. */
  private async reportBadValues(parquet: string): Promise<void> {
    const r = await this.ctx.serial(() =>
      this.ctx.duck.runAndReadAll(
        `SELECT count(*)::INTEGER AS n, min(_key) AS example FROM read_parquet(${sqlString(parquet)}) WHERE NOT value_ok`,
      ),
    );
    const row = r.getRowObjectsJson()[0];
    const n = Number(row?.n ?? 0);
    if (n > 0)
      this.ctx.report.event(
        'bad_value',
        'error',
        `${this.spec.table} ${typeof row?.example === 'string' ? row.example : '?'}: _value is not JSON`,
        n,
      );
  }
}
