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
 * Bad input (docs/dumps.md "Bad input"): a malformed row or line is an event (the rest is still
 * read): a row of the wrong width, a line longer than MAX_ROW_BYTES (never assembled in memory),
 * a data row outside any COPY block. Rows the reader drops count as `recordsScanned` and
 * `malformed`. A structure that cannot be read — a COPY header that does not parse (its rows
 * cannot be told from anything else), a gzip that ends early or is corrupt, input ending inside
 * a COPY block, a plain dump without pg_dump's trailer — throws MalformedInput with
 * `details.kind` (UnreadableKind), which the caller records as a fatal event.
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
  /** Lines read (0: the input is empty). */
  lines: number;
  /** From a Remora dump's header comments. */
  shard?: string;
  snapshotTime?: Date;
  tables: string[];
}

/** pg_dump writes this as its last line; without it a plain dump is truncated. */
const TRAILER = '-- PostgreSQL database dump complete';
const META_RE = /^-- remora-(shard|snapshot-time): (.+)$/;
/** psql meta-commands pg_dump writes (`\\restrict <key>`, `\\unrestrict <key>`, `\\connect`). */
const PSQL_META_RE = /^\\[a-z]+( |$)/;
/** Dollar quotes (`$$`, `$body$`) open and close function bodies, whose lines may hold anything. */
const DOLLAR_QUOTE_RE = /\$[A-Za-z_0-9]*\$/g;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const DOT = 0x2e;

/**
 * The longest line (a COPY row, or an entry line) the reader hands on. A longer one is refused
 * alone (`row_too_large`, malformed, with its key): only its first OVERSIZED_HEAD_BYTES are kept
 * while the rest is skipped, so no input — not even one without any newline — is assembled in
 * memory. Rows up to this size convert within the unpack's memory bound (docs/dumps.md "How it
 * runs, and memory": rows over chunk-writer.ts LARGE_ROW_BYTES take their own path; measured at
 * 500k rows, peak RSS with one such row of 21 / 25 / 33 MB: 449 / 440 / 502 MB, bound 500 MB).
 */
export const MAX_ROW_BYTES = 24 << 20;
const OVERSIZED_HEAD_BYTES = 64 << 10;

/** Why a dump could not be read (`details.kind` of the MalformedInput readDump throws). */
export type UnreadableKind = 'unreadable_input' | 'truncated_copy' | 'no_trailer' | 'unparsed_copy_header';

function unreadable(kind: UnreadableKind, message: string, cause?: unknown): RemoraError {
  return new RemoraError('MalformedInput', message, { cause, details: { kind } });
}

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
  const pending = new PendingLine();
  try {
    for await (const chunk of input) {
      const buf = chunk as Buffer;
      let start = 0;
      let nl = buf.indexOf(NEWLINE);
      if (!pending.empty) {
        pending.add(buf, 0, nl === -1 ? buf.length : nl);
        if (nl === -1) continue;
        pending.take(parser);
        start = nl + 1;
        nl = buf.indexOf(NEWLINE, start);
      }
      const last = buf.lastIndexOf(NEWLINE);
      // One UTF-8 check per chunk: rows of a valid chunk go to DuckDB as they are.
      const utf8 = last >= start && isUtf8(buf.subarray(start, last));
      for (; nl !== -1; nl = buf.indexOf(NEWLINE, start)) {
        if (nl - start > MAX_ROW_BYTES)
          parser.oversizedLine(buf.subarray(start, start + OVERSIZED_HEAD_BYTES), nl - start);
        else parser.lineBytes(buf, start, nl, utf8);
        start = nl + 1;
      }
      if (start < buf.length) pending.add(buf, start, buf.length);
      await sink.drain();
    }
  } catch (err) {
    if (err instanceof RemoraError) throw err;
    throw unreadable(
      'unreadable_input',
      `${name}: unreadable input (${(err as Error).message}); the file is truncated or corrupt`,
      err,
    );
  } finally {
    // Stopped early (a fatal error): the file or download under the gunzip is closed too.
    source.destroy();
  }
  if (!pending.empty) pending.take(parser);
  return parser.finish();
}

/**
 * The part of a line read so far, when it goes on in the next input chunk. Kept as pieces and
 * joined once (joining at every chunk copied a long row over and over); once past MAX_ROW_BYTES
 * only the first OVERSIZED_HEAD_BYTES stay, to name the row in the event.
 */
class PendingLine {
  private parts: Buffer[] = [];
  private bytes = 0;
  private started = false;

  get empty(): boolean {
    return !this.started;
  }

  add(buf: Buffer, start: number, end: number): void {
    this.started = true;
    const n = end - start;
    if (this.bytes <= MAX_ROW_BYTES && this.bytes + n > MAX_ROW_BYTES) {
      // From here on the line is refused: keep its head only.
      const head = Buffer.concat([...this.parts, buf.subarray(start, end)]);
      this.parts = [Buffer.from(head.subarray(0, OVERSIZED_HEAD_BYTES))];
    } else if (this.bytes <= MAX_ROW_BYTES && n > 0) this.parts.push(Buffer.from(buf.subarray(start, end)));
    this.bytes += n;
  }

  take(parser: LineParser): void {
    if (this.bytes > MAX_ROW_BYTES) parser.oversizedLine(this.parts[0]!, this.bytes);
    else {
      const line = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.bytes);
      parser.lineBytes(line, 0, line.length, isUtf8(line));
    }
    this.parts = [];
    this.bytes = 0;
    this.started = false;
  }
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
  private table: { name: string; ncols: number; key: number } | undefined;
  /** Outside COPY: inside a dollar-quoted function body of pg_dump's SQL. */
  private inDollarQuote = false;
  /** What the last line outside COPY was: the end of a block (`\.`), a stray row, or other. */
  private after: 'copy-end' | 'stray' | 'other' = 'other';
  private lastTable = '';
  private sawTrailer = false;
  private lineNo = 0;
  private readonly info: DumpInfo = { format: 'plain', lines: 0, tables: [] };

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

  /** A line over MAX_ROW_BYTES, of which `head` is the start: refused alone, with its key. */
  oversizedLine(head: Buffer, bytes: number): void {
    this.lineNo++;
    const text = head.toString('utf8');
    this.format ??= text.trimStart().startsWith('{') ? 'entry' : 'plain';
    this.info.format = this.format;
    if (this.format === 'plain' && !this.table) return this.stray(text);
    const key = this.table && this.table.key >= 0 ? text.split('\t')[this.table.key] : undefined;
    this.drop(
      'row_too_large',
      `${this.name}:${this.lineNo}: ${this.table ? `${this.table.name} ` : ''}row of ${bytes} bytes, over the ${MAX_ROW_BYTES}-byte limit: refused${
        key !== undefined && key.length <= 1024 ? `; _key ${key}` : `: ${text.slice(0, 200)}`
      }`,
    );
  }

  /** A row that is not kept: an event, and counted as scanned and malformed. */
  private drop(kind: string, example: string): void {
    this.report.event(kind, 'error', example);
    this.report.count('recordsScanned').count('malformed');
  }

  private plainLine(line: string): void {
    if (this.table) {
      if (line === '\\.') {
        this.sink.endTable();
        this.lastTable = this.table.name;
        this.table = undefined;
        this.after = 'copy-end';
        return;
      }
      const fields = line.split('\t');
      if (fields.length !== this.table.ncols) {
        this.drop(
          'bad_row',
          `${this.name}:${this.lineNo}: ${fields.length} fields, expected ${this.table.ncols}: ${line}`,
        );
        return;
      }
      const values = new Array<string | null>(fields.length);
      for (let i = 0; i < fields.length; i++) values[i] = unescapeCopyField(fields[i]!);
      this.sink.row(values);
      return;
    }
    if (this.inDollarQuote) {
      this.trackDollarQuotes(line);
      return;
    }
    if (line.startsWith('COPY ')) {
      const h = parseCopyHeader(line);
      this.after = 'other';
      if (!h)
        // Which table its rows are and what their columns mean is lost: the dump cannot be read.
        throw unreadable(
          'unparsed_copy_header',
          `${this.name}:${this.lineNo}: a COPY header that does not parse: ${line.slice(0, 500)}`,
        );
      this.table = { name: h.table, ncols: h.columns.length, key: h.columns.indexOf('_key') };
      this.info.tables.push(h.table);
      this.sink.startTable(h.table, h.columns);
      return;
    }
    if (line.startsWith(TRAILER)) {
      this.sawTrailer = true;
      this.after = 'other';
      return;
    }
    if (this.isStray(line)) return this.stray(line);
    if (!line.startsWith('--')) this.after = 'other';
    const m = META_RE.exec(line);
    if (m?.[1] === 'shard') this.info.shard = m[2]!.trim();
    else if (m?.[1] === 'snapshot-time') this.info.snapshotTime = new Date(m[2]!.trim());
    else this.trackDollarQuotes(line);
  }

  /**
   * Whether a line outside any COPY block is data rather than pg_dump's SQL: a second `\.`,
   * a line with a tab (COPY rows are tab-separated; pg_dump's SQL is indented with spaces and
   * function bodies are skipped), or any line but a comment or a psql meta-command right after
   * a `\.` or another stray row (pg_dump always writes an empty line after `\.`).
   */
  private isStray(line: string): boolean {
    if (line === '\\.' || line.includes('\t')) return true;
    if (PSQL_META_RE.test(line)) return false;
    return this.after !== 'other' && line !== '' && !line.startsWith('--');
  }

  private stray(line: string): void {
    const where = this.sawTrailer
      ? "after the dump's trailer"
      : this.lastTable
        ? `after the \\. of ${this.lastTable}`
        : 'before any COPY block';
    this.after = 'stray';
    this.drop(
      'stray_row',
      `${this.name}:${this.lineNo}: a row outside any COPY block (${where}), not read: ${line}`,
    );
  }

  private trackDollarQuotes(line: string): void {
    const n = line.match(DOLLAR_QUOTE_RE)?.length ?? 0;
    if (n % 2 === 1) this.inDollarQuote = !this.inDollarQuote;
  }

  private entryLine(line: string): void {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.drop('bad_line', `${this.name}:${this.lineNo}: ${line}`);
      return;
    }
    const o = parsed as { name?: unknown; keys?: unknown; entry?: unknown };
    if (typeof o.name === 'string' && Array.isArray(o.keys)) {
      if (this.table) this.sink.endTable();
      const keys = o.keys.map(String);
      this.table = { name: o.name, ncols: keys.length, key: keys.indexOf('_key') };
      this.info.tables.push(o.name);
      this.sink.startTable(o.name, keys);
    } else if (Array.isArray(o.entry) && this.table && o.entry.length === this.table.ncols) {
      this.sink.row(
        o.entry.map((v) =>
          v === '\\N' || v === null ? null : typeof v === 'string' ? v : JSON.stringify(v),
        ),
      );
    } else {
      const why = !this.table ? 'row before any {"name","keys"} header' : "not an entry of the table's width";
      this.drop('bad_line', `${this.name}:${this.lineNo}: ${why}: ${line}`);
    }
  }

  finish(): DumpInfo {
    this.info.lines = this.lineNo;
    if (this.format === 'plain') {
      if (this.table)
        throw unreadable(
          'truncated_copy',
          `${this.name}: input ends inside the COPY block of ${this.table.name}: the dump is truncated`,
        );
      if (this.info.tables.length > 0 && !this.sawTrailer)
        throw unreadable('no_trailer', `${this.name}: no "${TRAILER}" trailer: the dump is truncated`);
    } else if (this.table) this.sink.endTable();
    return this.info;
  }
}
