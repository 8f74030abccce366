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
import { ident, OID_UUID_TABLES, readCsvSql, readTsvSql, type TableSpec } from './table-specs.js';
import {
  CopyRowScanner,
  isInt64Bytes,
  isInt64Text,
  partitionOfAsciiBytes,
  unescapeCopyBytes,
} from './copy-rows.js';
import { sqlString } from './duckdb.js';
import { pickJsonFields } from './json-fields.js';
import type { ReportBuilder } from '../core/run-report.js';
import { eachLimit } from '../core/concurrency.js';

export interface ChunkInfo {
  path: string;
  partition: number;
  segment: number;
  rows: number;
  bytes: number;
  sha256: string;
  /**
   * `manta` and `manta_delete_log` chunks (CHUNK_SCHEMA 4): rows with an objectId that is not a
   * canonical uuid (`oid_uuid` NULL, table-specs.ts oidUuidSql). 0 lets GC skip its text join on
   * this chunk's objectIds (src/jobs/gc/gc.scan.ts). Absent before CHUNK_SCHEMA 4.
   */
  oidNotUuid?: number;
  /**
   * Moray chunks (CHUNK_SCHEMA 5): rows whose `_value` is not JSON (`value_ok` false; reported as
   * malformed). 0 on every `manta` chunk of a group lets GC skip its look for such live rows
   * (src/jobs/gc/gc.scan.ts). Absent before CHUNK_SCHEMA 5.
   */
  valueNotJson?: number;
}

export interface ChunkContext {
  store: ObjectStore;
  /**
   * Run DuckDB statements on a free connection of the run's pool (`conversions` of them);
   * `exclusive`: with every connection of the pool held, nothing else converting meanwhile.
   */
  withDuck: <T>(fn: (conn: DuckDBConnection) => Promise<T>, opts?: { exclusive?: boolean }) => Promise<T>;
  conversions: number;
  report: ReportBuilder;
  workDir: string;
  /** Mark the scratch directory as in use (chunk-run.ts: a run on another host is judged by it). */
  touch?: () => void;
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

/**
 * A row longer than this (characters of its values; about bytes) is a "large row": it does not
 * go through the intermediate files. Its long values are written to files of their own and read
 * back whole with DuckDB's `read_text`, the rest are SQL literals, and a moray `_value` is parsed
 * by Node (TableSpec.valueFields), not by DuckDB. Measured on one 20 MB row: `read_csv` of the
 * line needs ~205 MB beyond the process's baseline (its buffers are sized to the line) and any
 * DuckDB JSON function ~5-10x the document (a lone 24 MB `_value` ran out of the 256 MB limit;
 * a 16 MB one beside a 60k-row partition did too), while `read_text` and the Parquet write of
 * the same row need ~78 MB. Below this size every intermediate line fits read_csv's smallest
 * buffer (2 MiB).
 */
export const LARGE_ROW_BYTES = 1 << 20;
/** In a large row, values longer than this go to a file of their own; shorter ones are literals. */
const INLINE_VALUE_CHARS = 64 << 10;
/**
 * The large rows of one segment, together: past this the segment is closed at the next drain
 * (its intermediate files and value files do not pile up: a segment is counted in rows, sized for
 * ~1 KB rows).
 */
const LARGE_SEGMENT_BYTES = 32 << 20;
/**
 * A partition's large rows are converted in batches of at most this many bytes (one row of up
 * to MAX_ROW_BYTES alone), each its own chunk: DuckDB holds every row of a conversion at once,
 * so several 20 MB rows in one partition would add up.
 */
const LARGE_BATCH_BYTES = 8 << 20;

/** A large row's value: as it is, or the file holding it. */
type LargeCell = string | null | { file: string };
/** A large row: its cells, and its size (characters of its values; about bytes). */
interface LargeRow {
  cells: LargeCell[];
  bytes: number;
}

/** A CSV field's bytes, exactly: quotes, UTF-8, doubled quotes (for long values only). */
function csvFieldBytes(v: string): number {
  let n = Buffer.byteLength(v) + 2;
  for (let i = v.indexOf('"'); i !== -1; i = v.indexOf('"', i + 1)) n++;
  return n;
}
const EXACT_SIZE_CHARS = 64 << 10;

/** What one intermediate file of a segment holds (the read_csv buffer is sized to its longest line). */
export interface SegmentFile {
  rows: number;
  /** Bytes of its longest line, newline included. */
  longestLine: number;
}

interface SegmentFiles {
  csv: SegmentFile;
  tsv: SegmentFile;
  /** Large rows of the partition in this segment (LARGE_ROW_BYTES). */
  large: LargeRow[];
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
    for (const v of values)
      need += v === null ? 1 : v.length > EXACT_SIZE_CHARS ? csvFieldBytes(v) + 1 : v.length * 3 + 3;
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
  private segmentLargeBytes = 0;
  private largeFiles = 0;
  /** Per partition: decoded rows as CSV, clean COPY rows as they are (TSV), and large rows. */
  private readonly buffers: LineBuffer[] = [];
  private readonly rawBuffers: LineBuffer[] = [];
  private largeRows: LargeRow[][] = [];
  private readonly scanner: CopyRowScanner | undefined;
  private pending: Promise<void> = Promise.resolve();
  readonly chunks: ChunkInfo[] = [];
  /** Files of the converted chunks' `_key`s, for a store without local files (keyFiles()). */
  private readonly keyFileList: string[] = [];
  rows = 0;

  constructor(
    readonly spec: TableSpec,
    private readonly ctx: ChunkContext,
  ) {
    const bufferBytes = writeBufferBytes(ctx.partitions);
    for (let p = 0; p < ctx.partitions; p++) {
      this.buffers.push(new LineBuffer(() => this.csvFile(this.segment, p), bufferBytes));
      this.rawBuffers.push(new LineBuffer(() => this.tsvFile(this.segment, p), bufferBytes));
      this.largeRows.push([]);
    }
    if (spec.raw) this.scanner = new CopyRowScanner(spec.raw.width);
  }

  /**
   * Add one COPY row as bytes, when it needs no decoding (copy-rows.ts); false: it was not
   * taken (escapes, wrong width, a large row, or a table kind without a raw path), decode it
   * and add() it.
   */
  addRaw(buf: Buffer, start: number, end: number): boolean {
    const raw = this.spec.raw;
    const sc = this.scanner;
    if (raw && end - start > LARGE_ROW_BYTES) return this.addLargeRow(buf, start, end, raw);
    if (!raw || !sc || !sc.scan(buf, start, end)) return false;
    const ints = this.spec.integerColumns;
    if (ints)
      for (const c of ints) {
        if (sc.isNull(buf, c.index) || isInt64Bytes(buf, sc.starts[c.index]!, sc.ends[c.index]!)) continue;
        const key =
          this.spec.keyColumn < 0
            ? '?'
            : buf.toString('utf8', sc.starts[this.spec.keyColumn], sc.ends[this.spec.keyColumn]);
        this.badInteger(key, c.name, buf.toString('utf8', sc.starts[c.index], sc.ends[c.index]));
        break;
      }
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

  /**
   * A large row (LARGE_ROW_BYTES) as bytes, escapes or not: fields split on tabs, each decoded as
   * bytes (unescapeCopyBytes), long ones written to files, `_fields` picked from the `_value`
   * bytes — no string of a long value is made. False for the wrong width (decoded and reported
   * by the reader).
   */
  private addLargeRow(buf: Buffer, start: number, end: number, raw: NonNullable<TableSpec['raw']>): boolean {
    const fields: (Buffer | null)[] = [];
    for (let s = start; ;) {
      const t = buf.indexOf(0x09, s);
      const e = t === -1 || t >= end ? end : t;
      fields.push(
        e - s === 2 && buf[s] === 0x5c && buf[s + 1] === 0x4e ? null : unescapeCopyBytes(buf, s, e),
      );
      if (e === end) break;
      s = e + 1;
    }
    if (fields.length !== raw.width) return false;
    // The row as strings wherever it is short (keys, numbers), for the integer check and the
    // partition; a long value only by its start (an integer column that long is no integer).
    const values = fields.map((f) =>
      f === null ? null : f.toString('utf8', 0, f.length <= INLINE_VALUE_CHARS ? f.length : 100),
    );
    for (const k of [raw.key, raw.fallbackKey])
      if (k >= 0 && fields[k] && fields[k].length > INLINE_VALUE_CHARS)
        values[k] = fields[k].toString('utf8');
    this.checkIntegers(values);
    const p = partitionOf(this.spec.partitionKey(values), this.ctx.partitions);
    const vf = this.spec.valueFields;
    const cells: LargeCell[] = raw.project.map((d) => {
      const f = d < 0 ? null : fields[d]!;
      if (f === null) return null;
      return f.length > INLINE_VALUE_CHARS ? this.valueFile(f) : f.toString('utf8');
    });
    if (vf) {
      const v = fields[raw.project[vf.valueColumn]!];
      cells.push(v ? pickJsonFields(v, vf.names) : null);
    }
    this.largeRows[p]!.push({ cells, bytes: end - start });
    this.segmentLargeBytes += end - start;
    this.segmentRowCount++;
    this.rows++;
    return true;
  }

  /** Add one dump row (already decoded). */
  add(values: (string | null)[]): void {
    this.checkIntegers(values);
    const p = partitionOf(this.spec.partitionKey(values), this.ctx.partitions);
    const row = this.spec.project(values);
    let chars = 0;
    for (const v of row) chars += v?.length ?? 0;
    if (chars > LARGE_ROW_BYTES) {
      this.largeRows[p]!.push({ cells: this.largeRow(row), bytes: chars });
      this.segmentLargeBytes += chars;
    } else this.buffers[p]!.append(row);
    this.segmentRowCount++;
    this.rows++;
  }

  /**
   * A large row's cells (LARGE_ROW_BYTES), from decoded values: long ones written to files now
   * (their bytes also give `_fields`, without parsing the whole `_value` on the heap).
   */
  private largeRow(row: (string | null)[]): LargeCell[] {
    const vf = this.spec.valueFields;
    let fields: string | null = null;
    const cells: LargeCell[] = row.map((v, i) => {
      if (v === null) return v;
      const bytes = v.length > INLINE_VALUE_CHARS || i === vf?.valueColumn ? Buffer.from(v) : undefined;
      if (i === vf?.valueColumn) fields = pickJsonFields(bytes!, vf.names);
      return bytes && v.length > INLINE_VALUE_CHARS ? this.valueFile(bytes) : v;
    });
    if (vf) cells.push(fields);
    return cells;
  }

  private valueFile(bytes: Buffer): LargeCell {
    const file = path.join(this.ctx.workDir, `${this.spec.table}-value-${this.largeFiles++}`);
    fs.writeFileSync(file, bytes);
    return { file };
  }

  /** Report the row when an integer column (TableSpec.integerColumns) holds something else. */
  private checkIntegers(values: (string | null)[]): void {
    for (const c of this.spec.integerColumns ?? []) {
      const v = values[c.index];
      if (v === null || v === undefined || isInt64Text(v)) continue;
      this.badInteger(this.spec.keyColumn < 0 ? '?' : (values[this.spec.keyColumn] ?? '?'), c.name, v);
      return;
    }
  }

  /** A row kept with an integer column that is not one (NULL in the chunk): malformed, reported. */
  private badInteger(key: string, column: string, value: string): void {
    this.ctx.report.event(
      'bad_integer',
      'error',
      `${this.spec.table} ${key}: ${column} ${JSON.stringify(value.slice(0, 100))} is not an integer (NULL in the chunk)`,
    );
    this.ctx.report.count('malformed');
  }

  /** Between input chunks: rotate a full segment and hand it to DuckDB. */
  async drain(): Promise<void> {
    if (this.segmentRowCount >= this.ctx.segmentRows || this.segmentLargeBytes >= LARGE_SEGMENT_BYTES)
      await this.rotate();
  }

  async finish(): Promise<ChunkInfo[]> {
    if (this.segmentRowCount > 0) await this.rotate();
    await this.pending;
    this.chunks.sort(
      (a, b) => a.partition - b.partition || a.segment - b.segment || a.path.localeCompare(b.path),
    );
    return this.chunks;
  }

  /**
   * The run failed or its result is refused: close the files without converting, wait for a
   * conversion in flight (its error does not matter now), and return every chunk this writer
   * already put in the store, for the caller to delete.
   */
  async discard(): Promise<ChunkInfo[]> {
    for (const b of [...this.buffers, ...this.rawBuffers])
      if (b.fd !== undefined) {
        fs.closeSync(b.fd);
        b.fd = undefined;
      }
    await this.pending.catch(() => {});
    return this.chunks;
  }

  /**
   * Parquet files holding the `_key` of every row converted (after finish()): the chunks
   * themselves when the store keeps local files, else the key files written beside each
   * conversion (moray tables only). For the duplicate-key check (unpack.ts).
   */
  keyFiles(): string[] {
    const local = this.ctx.store.localPath?.bind(this.ctx.store);
    return local ? this.chunks.map((c) => local(c.path)) : [...this.keyFileList];
  }

  private csvFile(segment: number, p: number): string {
    return path.join(this.ctx.workDir, `${this.spec.table}-s${segment}-p${p}.csv`);
  }

  private tsvFile(segment: number, p: number): string {
    return path.join(this.ctx.workDir, `${this.spec.table}-s${segment}-p${p}.tsv`);
  }

  private async rotate(): Promise<void> {
    const segment = this.segment;
    const files = this.buffers.map((b, p) => ({
      csv: b.closeFile(),
      tsv: this.rawBuffers[p]!.closeFile(),
      large: this.largeRows[p]!,
    }));
    this.largeRows = this.largeRows.map(() => []);
    this.segment++;
    this.segmentRowCount = 0;
    this.segmentLargeBytes = 0;
    this.ctx.touch?.();
    // One conversion in flight; a failure surfaces at the next rotate or at finish().
    await this.pending;
    const next = this.convertSegment(segment, files);
    next.catch(() => {});
    this.pending = next;
  }

  /** The rows of one partition of a segment: the decoded (CSV) and the raw (TSV) file. */
  private segmentSource(segment: number, p: number, f: SegmentFiles): string {
    const parts: string[] = [];
    const cols = this.spec.csvColumns;
    const fields = this.spec.valueFields ? ', _value AS _fields' : '';
    if (f.csv.rows > 0)
      parts.push(`SELECT *${fields} FROM ${readCsvSql(this.csvFile(segment, p), cols, f.csv.longestLine)}`);
    const raw = this.spec.raw;
    if (f.tsv.rows > 0 && raw)
      parts.push(
        `SELECT *${fields} FROM (${readTsvSql(this.tsvFile(segment, p), raw.width, raw.project, cols, f.tsv.longestLine)})`,
      );
    return `(${parts.join(' UNION ALL ')}) AS src`;
  }

  /** The large rows of a partition of a segment: one SELECT each, long values read whole from their files. */
  private largeSource(rows: LargeRow[]): string {
    const names = this.spec.valueFields ? [...this.spec.csvColumns, '_fields'] : this.spec.csvColumns;
    const selects = rows.map((row) => {
      const cells = row.cells.map((c, i) => {
        const sql =
          c === null
            ? 'NULL::VARCHAR'
            : typeof c === 'string'
              ? `${sqlString(c)}::VARCHAR`
              : `(SELECT content FROM read_text(${sqlString(c.file)}))`;
        return `${sql} AS ${ident(names[i]!)}`;
      });
      return `SELECT ${cells.join(', ')}`;
    });
    return `(${selects.join(' UNION ALL ')}) AS src`;
  }

  /** Convert a segment's partitions, `ctx.conversions` at a time. */
  private async convertSegment(segment: number, files: SegmentFiles[]): Promise<void> {
    await eachLimit(files, this.ctx.conversions, async (f, p) => {
      if (f.csv.rows + f.tsv.rows > 0) await this.convertPartition(segment, p, f);
      if (f.large.length > 0) await this.convertLargeRows(segment, p, f.large);
    });
  }

  private async convertPartition(segment: number, p: number, f: SegmentFiles): Promise<void> {
    const out = path.join(this.ctx.workDir, `${this.spec.table}-s${segment}-p${p}.parquet`);
    const sql = this.spec.select(this.segmentSource(segment, p, f), this.ctx.source);
    await this.ctx.withDuck((conn) => conn.run(`COPY (${sql}) TO ${sqlString(out)} (${PARQUET_OPTIONS})`));
    await fs.promises.rm(this.csvFile(segment, p), { force: true });
    await fs.promises.rm(this.tsvFile(segment, p), { force: true });
    await this.adoptChunk(out, p, segment, f.csv.rows + f.tsv.rows, '');
  }

  /**
   * A partition's large rows (LARGE_ROW_BYTES) become chunks of their own (`…-large.parquet`,
   * then `-large1`, … for each further batch of LARGE_BATCH_BYTES), each converted with no other
   * conversion running: DuckDB holds ~5x a long value while it writes it (read_text, the row, the
   * Parquet page), next to nothing else.
   */
  private async convertLargeRows(segment: number, p: number, rows: LargeRow[]): Promise<void> {
    const batches: LargeRow[][] = [];
    let bytes = Infinity;
    for (const row of rows) {
      if (bytes + row.bytes > LARGE_BATCH_BYTES) {
        batches.push([]);
        bytes = 0;
      }
      batches[batches.length - 1]!.push(row);
      bytes += row.bytes;
    }
    for (const [b, batch] of batches.entries()) {
      const suffix = `-large${b === 0 ? '' : b}`;
      const out = path.join(this.ctx.workDir, `${this.spec.table}-s${segment}-p${p}${suffix}.parquet`);
      const sql = this.spec.select(this.largeSource(batch), this.ctx.source);
      await this.ctx.withDuck((conn) => conn.run(`COPY (${sql}) TO ${sqlString(out)} (${PARQUET_OPTIONS})`), {
        exclusive: true,
      });
      for (const row of batch)
        for (const c of row.cells)
          if (c && typeof c === 'object') await fs.promises.rm(c.file, { force: true });
      await this.adoptChunk(out, p, segment, batch.length, suffix);
    }
  }

  private async adoptChunk(
    out: string,
    p: number,
    segment: number,
    rows: number,
    suffix: string,
  ): Promise<void> {
    const counted = this.spec.checksValues ? await this.reportBadValues(out) : undefined;
    if (this.spec.kind === 'moray' && !this.ctx.store.localPath) {
      // The chunk leaves this machine: keep its keys for the duplicate-key check.
      const keys = out.replace(/\.parquet$/, '.keys.parquet');
      await this.ctx.withDuck((conn) =>
        conn.run(
          `COPY (SELECT _key FROM read_parquet(${sqlString(out)})) TO ${sqlString(keys)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)`,
        ),
      );
      this.keyFileList.push(keys);
    }
    const objectPath = chunkPath(
      this.ctx.day,
      this.ctx.source,
      this.ctx.runId,
      this.spec.table,
      p,
      segment,
      suffix,
    );
    const put = await adoptFile(this.ctx.store, objectPath, out);
    this.chunks.push({
      path: objectPath,
      partition: p,
      segment,
      rows,
      bytes: put.bytes,
      sha256: put.sha256,
      ...(counted?.oidNotUuid !== undefined ? { oidNotUuid: counted.oidNotUuid } : {}),
      ...(counted !== undefined ? { valueNotJson: counted.valueNotJson } : {}),
    });
  }

  /**
   * Rows whose `_value` is not JSON are kept (raw `_value`, typed columns NULL), reported, malformed
   * (returned: ChunkInfo.valueNotJson). In the same read, for a table with `oid_uuid`, the rows whose
   * objectId is not a uuid (ChunkInfo.oidNotUuid).
   */
  private async reportBadValues(
    parquet: string,
  ): Promise<{ valueNotJson: number; oidNotUuid: number | undefined }> {
    const oid = OID_UUID_TABLES.has(this.spec.table);
    const from = `read_parquet(${sqlString(parquet)})`;
    const [r, oids] = await this.ctx.withDuck(async (conn) => [
      await conn.runAndReadAll(
        `SELECT count(*)::INTEGER AS n, min(_key) AS example FROM ${from} WHERE NOT value_ok`,
      ),
      // oid_uuid is NULL where objectId is (and where it is not a uuid).
      oid
        ? await conn.runAndReadAll(`SELECT (count(objectId) - count(oid_uuid))::INTEGER AS n FROM ${from}`)
        : undefined,
    ]);
    const row = r.getRowObjectsJson()[0];
    const n = Number(row?.n ?? 0);
    if (n > 0)
      this.ctx.report.event(
        'bad_value',
        'error',
        `${this.spec.table} ${typeof row?.example === 'string' ? row.example : '?'}: _value is not JSON`,
        n,
      );
    if (n > 0) this.ctx.report.count('malformed', n);
    return { valueNotJson: n, oidNotUuid: oids ? Number(oids.getRows()[0]![0]) : undefined };
  }
}
