/**
 * Writes one table's rows as Parquet chunks partitioned by partitionOf(partition key, P).
 *
 * Rows are appended to intermediate files per partition (write buffers: writeBufferBytes). Every
 * `segmentRows` rows the segment is closed and converted to Parquet by DuckDB in the
 * background while the next segment fills: Node parses, DuckDB converts, on two cores. At most
 * one segment is converting, so memory is bounded by the write buffers, one DuckDB COPY and
 * the input stream — not by the table or by P. Each (partition, segment) becomes one chunk.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { partitionOf } from './partition.js';
import { chunkPath } from './layout.js';
import { adoptFile, type ObjectStore } from '../objectstore/object-store.js';
import { readCsvSql, readTsvSql, type TableSpec } from './table-specs.js';
import { CopyRowScanner, partitionOfAsciiBytes } from './copy-rows.js';
import { sqlString } from './duckdb.js';
import type { ReportBuilder } from '../core/run-report.js';
import { eachLimit } from '../core/concurrency.js';

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
  /** Run DuckDB statements on a free connection of the run's pool (`conversions` of them). */
  withDuck: <T>(fn: (conn: DuckDBConnection) => Promise<T>) => Promise<T>;
  conversions: number;
  report: ReportBuilder;
  workDir: string;
  partitions: number;
  segmentRows: number;
  day: string;
  source: string;
  runId: string;
}

/**
 * Parquet writing. Row groups of 10k rows (or 8 MB): a conversion holds one row group per thread
 * in memory, and two conversions run at once (chunk-run.ts); with 100k-row groups two of them
 * took the unpack to ~590 MB RSS, with 10k ~440–470 MB (1M-row bench). Readers lose nothing
 * measurable: a partition chunk is still read in one go.
 */
const PARQUET_OPTIONS =
  'FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, DICTIONARY_SIZE_LIMIT 1, ROW_GROUP_SIZE 10000, ROW_GROUP_SIZE_BYTES 8388608';

/** Bytes buffered per intermediate file before a write, at most. */
const MAX_WRITE_BUFFER_BYTES = 1 << 20;
const MIN_WRITE_BUFFER_BYTES = 64 << 10;
/** The write buffers of one table's files together (each partition has a CSV and a TSV file). */
const WRITE_BUFFER_BUDGET_BYTES = 32 << 20;

/**
 * Each intermediate file's write buffer for P partitions: 1 MB up to P = 16, then smaller, so
 * that the buffers stay within 32 MB up to P = 256 instead of growing with P (the automatic P
 * grows with the table: 1024 partitions of two 1 MB buffers were 2 GB); never under 64 KB, so
 * writes stay few (P = 1024: 128 MB at most, and a CSV file's buffer is only allocated when a
 * row needs decoding).
 */
export function writeBufferBytes(partitions: number): number {
  const share = Math.floor(WRITE_BUFFER_BUDGET_BYTES / (2 * partitions));
  return Math.min(MAX_WRITE_BUFFER_BYTES, Math.max(MIN_WRITE_BUFFER_BYTES, share));
}

/** What one intermediate file of a segment holds (the read_csv buffer is sized to its longest line). */
export interface SegmentFile {
  rows: number;
  /** Bytes of its longest line, newline included. */
  longestLine: number;
}

/**
 * One intermediate file's write buffer. Rows are encoded straight into bytes: building CSV lines
 * as JS strings and joining them cost more in GC than everything else together.
 */
export class LineBuffer {
  /** Allocated at the first row: most tables' CSV files (rows that needed decoding) stay empty. */
  private buf: Buffer | undefined;
  private off = 0;
  private rows = 0;
  private longestLine = 0;
  fd: number | undefined;

  constructor(
    private readonly file: () => string,
    private readonly capacity: number,
  ) {}

  /** The buffer, with room for `need` more bytes (a longer line gets a buffer until the next flush). */
  private room(need: number): Buffer {
    if (this.buf && this.off + need <= this.buf.length) return this.buf;
    this.flush();
    if (!this.buf || need > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(need, this.capacity));
    return this.buf;
  }

  /** Append one CSV row: NULL as an empty field, values quoted with `"` doubled. */
  append(values: (string | null)[]): void {
    let need = 1;
    for (const v of values) need += v === null ? 1 : v.length * 3 + 3;
    const b = this.room(need);
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
    this.counted(o - this.off);
    this.off = o;
  }

  /** Append `src[start, end)` and a newline (a raw COPY row, copy-rows.ts). */
  appendLine(src: Buffer, start: number, end: number): void {
    const need = end - start + 1;
    const b = this.room(need);
    src.copy(b, this.off, start, end);
    this.off += need;
    b[this.off - 1] = 0x0a;
    this.counted(need);
  }

  private counted(lineBytes: number): void {
    this.rows++;
    if (lineBytes > this.longestLine) this.longestLine = lineBytes;
  }

  /** Close the file; what it holds, and start counting afresh for the next one. */
  closeFile(): SegmentFile {
    this.flush();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    const file = { rows: this.rows, longestLine: this.longestLine };
    this.rows = 0;
    this.longestLine = 0;
    return file;
  }

  private flush(): void {
    if (this.off === 0 || !this.buf) return;
    this.fd ??= fs.openSync(this.file(), 'w');
    fs.writeSync(this.fd, this.buf, 0, this.off);
    this.off = 0;
    if (this.buf.length > this.capacity) this.buf = undefined;
  }
}

export class PartitionedChunkWriter {
  private segment = 0;
  private segmentRowCount = 0;
  /** Per partition: decoded rows as CSV, and clean COPY rows as they are (TSV). */
  private readonly buffers: LineBuffer[] = [];
  private readonly rawBuffers: LineBuffer[] = [];
  private readonly scanner: CopyRowScanner | undefined;
  private pending: Promise<void> = Promise.resolve();
  readonly chunks: ChunkInfo[] = [];
  rows = 0;

  constructor(
    readonly spec: TableSpec,
    private readonly ctx: ChunkContext,
  ) {
    const bufferBytes = writeBufferBytes(ctx.partitions);
    for (let p = 0; p < ctx.partitions; p++) {
      this.buffers.push(new LineBuffer(() => this.csvFile(this.segment, p), bufferBytes));
      this.rawBuffers.push(new LineBuffer(() => this.tsvFile(this.segment, p), bufferBytes));
    }
    if (spec.raw) this.scanner = new CopyRowScanner(spec.raw.width);
  }

  /**
   * Add one COPY row as bytes, when it needs no decoding (copy-rows.ts); false: it was not
   * taken (escapes, wrong width, or a table kind without a raw path), decode it and add() it.
   */
  addRaw(buf: Buffer, start: number, end: number): boolean {
    const raw = this.spec.raw;
    const sc = this.scanner;
    if (!raw || !sc || !sc.scan(buf, start, end)) return false;
    let k = raw.key;
    if (sc.isNullOrEmpty(buf, k)) k = raw.fallbackKey;
    let p: number;
    if (k >= 0 && !sc.isNull(buf, k)) {
      p = partitionOfAsciiBytes(buf, sc.starts[k]!, sc.ends[k]!, this.ctx.partitions);
      if (p < 0) p = partitionOf(buf.toString('utf8', sc.starts[k], sc.ends[k]), this.ctx.partitions);
    } else p = partitionOf('', this.ctx.partitions);
    this.rawBuffers[p]!.appendLine(buf, start, end);
    this.segmentRowCount++;
    this.rows++;
    return true;
  }

  /** Add one dump row (already decoded). */
  add(values: (string | null)[]): void {
    const p = partitionOf(this.spec.partitionKey(values), this.ctx.partitions);
    this.buffers[p]!.append(this.spec.project(values));
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
    for (const b of [...this.buffers, ...this.rawBuffers]) if (b.fd !== undefined) fs.closeSync(b.fd);
  }

  private csvFile(segment: number, p: number): string {
    return path.join(this.ctx.workDir, `${this.spec.table}-s${segment}-p${p}.csv`);
  }

  private tsvFile(segment: number, p: number): string {
    return path.join(this.ctx.workDir, `${this.spec.table}-s${segment}-p${p}.tsv`);
  }

  private async rotate(): Promise<void> {
    const segment = this.segment;
    const files = this.buffers.map((b, p) => ({ csv: b.closeFile(), tsv: this.rawBuffers[p]!.closeFile() }));
    this.segment++;
    this.segmentRowCount = 0;
    // One conversion in flight; a failure surfaces at the next rotate or at finish().
    await this.pending;
    const next = this.convertSegment(segment, files);
    next.catch(() => {});
    this.pending = next;
  }

  /** The rows of one partition of a segment: the decoded (CSV) and the raw (TSV) file. */
  private segmentSource(segment: number, p: number, csv: SegmentFile, tsv: SegmentFile): string {
    const parts: string[] = [];
    const cols = this.spec.csvColumns;
    if (csv.rows > 0)
      parts.push(`SELECT * FROM ${readCsvSql(this.csvFile(segment, p), cols, csv.longestLine)}`);
    const raw = this.spec.raw;
    if (tsv.rows > 0 && raw)
      parts.push(readTsvSql(this.tsvFile(segment, p), raw.width, raw.project, cols, tsv.longestLine));
    return `(${parts.join(' UNION ALL ')}) AS src`;
  }

  /** Convert a segment's partitions, `ctx.conversions` at a time. */
  private async convertSegment(
    segment: number,
    files: { csv: SegmentFile; tsv: SegmentFile }[],
  ): Promise<void> {
    await eachLimit(files, this.ctx.conversions, (f, p) => this.convertPartition(segment, p, f.csv, f.tsv));
  }

  private async convertPartition(
    segment: number,
    p: number,
    csv: SegmentFile,
    tsv: SegmentFile,
  ): Promise<void> {
    const rows = csv.rows + tsv.rows;
    if (rows === 0) return;
    const out = path.join(this.ctx.workDir, `${this.spec.table}-s${segment}-p${p}.parquet`);
    const sql = this.spec.select(this.segmentSource(segment, p, csv, tsv), this.ctx.source);
    await this.ctx.withDuck((conn) => conn.run(`COPY (${sql}) TO ${sqlString(out)} (${PARQUET_OPTIONS})`));
    await fs.promises.rm(this.csvFile(segment, p), { force: true });
    await fs.promises.rm(this.tsvFile(segment, p), { force: true });
    if (this.spec.checksValues) await this.reportBadValues(out);
    const objectPath = chunkPath(this.ctx.day, this.ctx.source, this.ctx.runId, this.spec.table, p, segment);
    const put = await adoptFile(this.ctx.store, objectPath, out);
    this.chunks.push({
      path: objectPath,
      partition: p,
      segment,
      rows,
      bytes: put.bytes,
      sha256: put.sha256,
    });
  }

  /** Rows whose `_value` is not JSON are kept (raw `_value`, typed columns NULL) and reported. */
  private async reportBadValues(parquet: string): Promise<void> {
    const r = await this.ctx.withDuck((conn) =>
      conn.runAndReadAll(
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
