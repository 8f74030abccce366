/**
 * Streaming reader for the two dump formats an operator may hold (MANTA-REFERENCE §2):
 *
 *   plain   a pg_dump plain-format dump (Remora's own or a manatee backup), gzipped or not:
 *           `COPY … FROM stdin;` blocks of COPY text rows, ended by `\.`; everything else ignored.
 *   entry   the original unpacked table objects (mola sqltojson): `{"name","keys"}` then one
 *           `{"entry":[…]}` per row, values as strings, SQL NULL as the string `\N`.
 *
 * The format is sniffed from the first non-empty line; gzip from its magic bytes. Rows go to a
 * synchronous sink one at a time, so memory holds one input chunk, never a table.
 *
 * Bad input: a malformed row or line is an event (the rest is still read); a truncated file
 * (gzip ends early, input ends inside a COPY block, plain dump without pg_dump's trailer)
 * throws MalformedInput and fails the run.
 */
import { Readable } from 'node:stream';
import { isUtf8 } from 'node:buffer';
import zlib from 'node:zlib';
import { ZLIB_CHUNK_BYTES } from './parallel-gzip.js';
import { RemoraError } from '../core/errors.js';
import { parseCopyHeader, unescapeCopyField } from './copy-text.js';
import type { ReportBuilder } from '../core/run-report.js';

export interface DumpSink {
  startTable(table: string, columns: string[]): void;
  row(values: (string | null)[]): void;
  endTable(): void;
  /** Called between input chunks: the place to wait for a background flush (backpressure). */
  drain(): Promise<void>;
  /**
   * Optional fast path: one COPY row as bytes `buf[start, end)` (valid UTF-8, no newline).
   * Return false to get it decoded through row() instead (escapes, wrong width: see copy-rows.ts).
   */
  rawRow?(buf: Buffer, start: number, end: number): boolean;
}

export interface DumpInfo {
  format: 'plain' | 'entry';
  /** From a Remora dump's header comments. */
  shard?: string;
  snapshotTime?: Date;
  tables: string[];
}

/** pg_dump writes this as its last line; without it a plain dump is truncated. */
const TRAILER = '-- PostgreSQL database dump complete';
const META_RE = /^-- remora-(shard|snapshot-time): (.+)$/;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const DOT = 0x2e;

export async function readDump(
  source: Readable,
  sink: DumpSink,
  report: ReportBuilder,
  name = 'dump',
): Promise<DumpInfo> {
  const input = await maybeGunzip(source);
  const parser = new LineParser(sink, report, name);
  // Lines are split on the newline byte (never part of a multi-byte UTF-8 character), so rows
  // can go to the sink as bytes; only the lines that need it are decoded to strings.
  let rest: Buffer | undefined;
  try {
    for await (const chunk of input) {
      const buf = chunk as Buffer;
      let start = 0;
      let nl = buf.indexOf(NEWLINE);
      if (rest !== undefined) {
        if (nl === -1) {
          rest = Buffer.concat([rest, buf]);
          continue;
        }
        const joined = Buffer.concat([rest, buf.subarray(0, nl)]);
        parser.lineBytes(joined, 0, joined.length, isUtf8(joined));
        rest = undefined;
        start = nl + 1;
        nl = buf.indexOf(NEWLINE, start);
      }
      const last = buf.lastIndexOf(NEWLINE);
      // One UTF-8 check per chunk: rows of a valid chunk go to DuckDB as they are.
      const utf8 = last >= start && isUtf8(buf.subarray(start, last));
      for (; nl !== -1; nl = buf.indexOf(NEWLINE, start)) {
        parser.lineBytes(buf, start, nl, utf8);
        start = nl + 1;
      }
      if (start < buf.length) rest = Buffer.from(buf.subarray(start));
      await sink.drain();
    }
  } catch (err) {
    if (err instanceof RemoraError) throw err;
    throw new RemoraError(
      'MalformedInput',
      `${name}: unreadable input (${(err as Error).message}); the file is truncated or corrupt`,
      { cause: err },
    );
  }
  if (rest !== undefined) parser.line(rest.toString('utf8'));
  return parser.finish();
}

/** Peek at the first bytes; gunzip when they are gzip's magic number. */
async function maybeGunzip(source: Readable): Promise<Readable> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : Buffer.from(first.value);
  async function* replay(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  const stream = Readable.from(replay(), { objectMode: false });
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = zlib.createGunzip({ chunkSize: ZLIB_CHUNK_BYTES });
    stream.on('error', (e) => gunzip.destroy(e));
    return stream.pipe(gunzip);
  }
  return stream;
}

class LineParser {
  private format: 'plain' | 'entry' | undefined;
  private table: { name: string; ncols: number } | undefined;
  private sawTrailer = false;
  private lineNo = 0;
  private readonly info: DumpInfo = { format: 'plain', tables: [] };

  constructor(
    private readonly sink: DumpSink,
    private readonly report: ReportBuilder,
    private readonly name: string,
  ) {}

  /** One line as bytes; `utf8` says the bytes are valid UTF-8. */
  lineBytes(buf: Buffer, start: number, end: number, utf8: boolean): void {
    if (this.table && this.format === 'plain' && utf8 && this.sink.rawRow) {
      const endOfData = end - start === 2 && buf[start] === BACKSLASH && buf[start + 1] === DOT;
      if (!endOfData && this.sink.rawRow(buf, start, end)) {
        this.lineNo++;
        return;
      }
    }
    this.line(buf.toString('utf8', start, end));
  }

  line(line: string): void {
    this.lineNo++;
    if (this.format === undefined) {
      if (line.trim() === '') return;
      this.format = line.startsWith('{') ? 'entry' : 'plain';
      this.info.format = this.format;
    }
    if (this.format === 'plain') this.plainLine(line);
    else this.entryLine(line);
  }

  private plainLine(line: string): void {
    if (this.table) {
      if (line === '\\.') {
        this.sink.endTable();
        this.table = undefined;
        return;
      }
      const fields = line.split('\t');
      if (fields.length !== this.table.ncols) {
        this.report.event(
          'bad_row',
          'error',
          `${this.name}:${this.lineNo}: ${fields.length} fields, expected ${this.table.ncols}: ${line}`,
        );
        return;
      }
      const values = new Array<string | null>(fields.length);
      for (let i = 0; i < fields.length; i++) values[i] = unescapeCopyField(fields[i]!);
      this.sink.row(values);
      return;
    }
    if (line.startsWith('COPY ')) {
      const h = parseCopyHeader(line);
      if (!h) {
        this.report.event('unparsed_copy_header', 'error', `${this.name}:${this.lineNo}: ${line}`);
        return;
      }
      this.table = { name: h.table, ncols: h.columns.length };
      this.info.tables.push(h.table);
      this.sink.startTable(h.table, h.columns);
    } else if (line.startsWith(TRAILER)) this.sawTrailer = true;
    else {
      const m = META_RE.exec(line);
      if (m?.[1] === 'shard') this.info.shard = m[2]!.trim();
      else if (m?.[1] === 'snapshot-time') this.info.snapshotTime = new Date(m[2]!.trim());
    }
  }

  private entryLine(line: string): void {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.report.event('bad_line', 'error', `${this.name}:${this.lineNo}: ${line}`);
      return;
    }
    const o = parsed as { name?: unknown; keys?: unknown; entry?: unknown };
    if (typeof o.name === 'string' && Array.isArray(o.keys)) {
      if (this.table) this.sink.endTable();
      this.table = { name: o.name, ncols: o.keys.length };
      this.info.tables.push(o.name);
      this.sink.startTable(o.name, o.keys.map(String));
    } else if (Array.isArray(o.entry) && this.table && o.entry.length === this.table.ncols) {
      this.sink.row(
        o.entry.map((v) =>
          v === '\\N' || v === null ? null : typeof v === 'string' ? v : JSON.stringify(v),
        ),
      );
    } else {
      const why = !this.table ? 'row before any {"name","keys"} header' : "not an entry of the table's width";
      this.report.event('bad_line', 'error', `${this.name}:${this.lineNo}: ${why}: ${line}`);
    }
  }

  finish(): DumpInfo {
    if (this.format === 'plain') {
      if (this.table)
        throw new RemoraError(
          'MalformedInput',
          `${this.name}: input ends inside the COPY block of ${this.table.name}: the dump is truncated`,
        );
      if (this.info.tables.length > 0 && !this.sawTrailer)
        throw new RemoraError(
          'MalformedInput',
          `${this.name}: no "${TRAILER}" trailer: the dump is truncated`,
        );
    } else if (this.table) this.sink.endTable();
    return this.info;
  }
}
