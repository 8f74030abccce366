/**
 * COPY text rows handled as bytes, without decoding them to strings.
 *
 * Most rows of a dump need no decoding at all: no field holds a backslash escape, the only
 * backslashes are whole `\N` (NULL) fields. Such a row's bytes are already a valid line for
 * DuckDB's `read_csv(delim = '\t', quote = '', escape = '', nullstr = '\N')`, so the unpacker
 * copies them as they are into the partition's intermediate file and DuckDB reads them there.
 * Measured (1M `manta` rows of ~900 bytes): decoding every row to strings, splitting, unescaping
 * and re-encoding as CSV took ~15 s of the main thread; finding the fields with
 * `Buffer.indexOf` takes ~0.5 s (a JS byte loop over the same rows: ~2.6 s).
 *
 * A row with any other escape (`\\`, `\t`, octal, …) is not "clean": the caller decodes it the
 * slow way. Field boundaries are raw tabs: COPY text escapes a tab inside a value.
 */

const TAB = 0x09;
const BACKSLASH = 0x5c;
const UPPER_N = 0x4e;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export class CopyRowScanner {
  /** `starts[i]`/`ends[i]`: byte range of field i of the last clean row. */
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  /** Next backslash at or after the last search in `bsBuf` (buffer length when none). */
  private bs = -1;
  private bsBuf: Buffer | undefined;

  constructor(private readonly ncols: number) {
    this.starts = new Int32Array(ncols);
    this.ends = new Int32Array(ncols);
  }

  /**
   * Find the fields of the row `buf[start, end)` (no newline). True when the row has exactly
   * `ncols` fields and no escape other than whole `\N` fields; false means "decode it".
   */
  scan(buf: Buffer, start: number, end: number): boolean {
    const n = this.ncols;
    let pos = start;
    for (let i = 0; i < n - 1; i++) {
      const t = buf.indexOf(TAB, pos);
      if (t === -1 || t >= end) return false;
      this.starts[i] = pos;
      this.ends[i] = t;
      pos = t + 1;
    }
    const extra = buf.indexOf(TAB, pos);
    if (extra !== -1 && extra < end) return false;
    this.starts[n - 1] = pos;
    this.ends[n - 1] = end;
    return this.onlyNullEscapes(buf, start, end);
  }

  /** Whether every backslash in `buf[start, end)` is a whole `\N` field. Amortized: one search per backslash. */
  private onlyNullEscapes(buf: Buffer, start: number, end: number): boolean {
    if (buf !== this.bsBuf) {
      this.bsBuf = buf;
      this.bs = -1;
    }
    let b = this.bs;
    if (b < start) {
      b = buf.indexOf(BACKSLASH, start);
      if (b === -1) b = buf.length;
    }
    while (b < end) {
      const wholeNull =
        buf[b + 1] === UPPER_N &&
        (b === start || buf[b - 1] === TAB) &&
        (b + 2 === end || buf[b + 2] === TAB);
      if (!wholeNull) {
        this.bs = b;
        return false;
      }
      b = buf.indexOf(BACKSLASH, b + 2);
      if (b === -1) b = buf.length;
    }
    this.bs = b;
    return true;
  }

  /** Whether field i of the last clean row is SQL NULL (`\N`). */
  isNull(buf: Buffer, i: number): boolean {
    const s = this.starts[i]!;
    return this.ends[i]! - s === 2 && buf[s] === BACKSLASH;
  }

  /** Whether field i of the last clean row is NULL or empty (what `id ? id : key` falls through on). */
  isNullOrEmpty(buf: Buffer, i: number): boolean {
    return this.ends[i] === this.starts[i] || this.isNull(buf, i);
  }
}

/**
 * partitionOf() of field bytes, without building the string: FNV-1a over the ASCII-lower-cased
 * bytes. Returns -1 when a byte is not ASCII (the caller decodes and uses partitionOf, whose
 * `toLowerCase` is Unicode-aware).
 */
export function partitionOfAsciiBytes(buf: Buffer, start: number, end: number, partitions: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) {
    let c = buf[i]!;
    if (c >= 0x80) return -1;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return (h >>> 0) % partitions;
}

const INT64_MAX = '9223372036854775807';
const INT64_MIN_ABS = '9223372036854775808';

/**
 * Whether `buf[start, end)` is an integer PostgreSQL writes for a bigint/integer column: an
 * optional `-` and 1 to 19 digits, within int64. What DuckDB's TRY_CAST(… AS BIGINT) would turn
 * into NULL is not (a number in another form, such as `1e3` or ` 5`, is reported too).
 */
export function isInt64Bytes(buf: Buffer, start: number, end: number): boolean {
  const neg = buf[start] === 0x2d;
  const s = neg ? start + 1 : start;
  const n = end - s;
  if (n < 1 || n > 19) return false;
  for (let i = s; i < end; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) return false;
  }
  return n < 19 || buf.toString('latin1', s, end) <= (neg ? INT64_MIN_ABS : INT64_MAX);
}

/** isInt64Bytes of a decoded value. */
export function isInt64Text(v: string): boolean {
  if (!/^-?\d{1,19}$/.test(v)) return false;
  const neg = v.startsWith('-');
  const digits = neg ? v.slice(1) : v;
  return digits.length < 19 || digits <= (neg ? INT64_MIN_ABS : INT64_MAX);
}

const ESCAPED_BYTE: Record<number, number> = {
  0x62: 0x08,
  0x66: 0x0c,
  0x6e: 0x0a,
  0x72: 0x0d,
  0x74: 0x09,
  0x76: 0x0b,
};

function isOctal(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x37;
}

function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** Write code point `code` (< 0x800) as UTF-8 at `o`; the new offset. */
function putCode(out: Buffer, o: number, code: number): number {
  if (code < 0x80) out[o++] = code;
  else {
    out[o++] = 0xc0 | (code >> 6);
    out[o++] = 0x80 | (code & 0x3f);
  }
  return o;
}

/**
 * One COPY text field decoded as bytes: `Buffer.from(unescapeCopyField(text), 'utf8')` for a
 * field of valid UTF-8, without the string (copy-text.ts; octal and hex escapes are character
 * codes, as there). For the long fields of large rows (chunk-writer.ts).
 */
export function unescapeCopyBytes(buf: Buffer, start: number, end: number): Buffer {
  let bs = buf.indexOf(BACKSLASH, start);
  if (bs === -1 || bs >= end) return buf.subarray(start, end);
  // Never longer than the escaped text: every escape is at least two bytes and yields at most two.
  const out = Buffer.allocUnsafe(end - start);
  let o = 0;
  let from = start;
  while (bs !== -1 && bs < end) {
    o += buf.copy(out, o, from, bs);
    if (bs === end - 1) {
      out[o++] = BACKSLASH;
      from = end;
      break;
    }
    const n = buf[bs + 1]!;
    let i = bs + 2;
    if (ESCAPED_BYTE[n] !== undefined) out[o++] = ESCAPED_BYTE[n];
    else if (isOctal(n)) {
      let code = n - 0x30;
      for (let k = 0; k < 2 && i < end && isOctal(buf[i]); k++, i++) code = code * 8 + buf[i]! - 0x30;
      o = putCode(out, o, code);
    } else if (n === 0x78 && bs + 2 < end && hexValue(buf[bs + 2]) >= 0) {
      let code = hexValue(buf[bs + 2]);
      i = bs + 3;
      if (i < end && hexValue(buf[i]) >= 0) code = code * 16 + hexValue(buf[i++]);
      o = putCode(out, o, code);
    } else out[o++] = n;
    from = i;
    bs = buf.indexOf(BACKSLASH, from);
  }
  o += buf.copy(out, o, from, end);
  return out.subarray(0, o);
}
