/**
 * The decisions of one partition group that act (remove a delete record, and move copies for
 * `eligible`): one entry per record, no object per decision. The scan fills it with DuckDB's
 * text itself for the records it decided in SQL (gc.scan.ts; addLines), and from
 * RecordDecision objects for the others (decideObject); the plan is written from it and the
 * apply reads it (gc.apply.ts applyActions). Measured (docs/gc.md "Bench"): a decision object,
 * its record, its copies and its plan line per acting record, then the apply's own objects, were
 * most of a group's time in Node and of its garbage collection; in the fifth pass, a string per
 * field of each acting record (as columns) still cost more in garbage collection than reading the
 * fields off the one string when needed.
 */
import { RemoraError } from '../../core/errors.js';
import { CLEANS_UP, type CopyRef, type RecordDecision, type Verdict } from './gc.plan.js';
import { GC_FIELD_SEPARATOR, GC_LINE_SEPARATOR } from '../../dumps/table-specs.js';

/**
 * The plan's text (`plan.tsv`, docs/gc.md): one line per acting delete record, tab-separated —
 * PLAN_COLUMNS, then a node and its datacenter for each copy the record names (objectId, directory
 * and copies only for `eligible`: what moves to tombstone). A field holding a tab, a newline, a
 * carriage return or a backslash has them escaped as PostgreSQL's COPY TEXT does (`\t`, `\n`,
 * `\r`, `\\`). The scan's acting lines (gc.scan.ts `acts`) are lines of clean records, which hold
 * none of these (table-specs.ts deleteRecordCleanSql): they are the plan as they come.
 */
export const PLAN_LINE_SEPARATOR = GC_LINE_SEPARATOR;
export const PLAN_FIELD_SEPARATOR = GC_FIELD_SEPARATOR;
export const PLAN_COLUMNS = [
  'verdict',
  'mtime',
  'copies',
  'contentLength',
  'shard',
  'key',
  'etag',
  'objectId',
  'directory',
] as const;
/** The plan's first line: its columns, then what follows them. */
export const PLAN_HEADER = `#${PLAN_COLUMNS.join(PLAN_FIELD_SEPARATOR)}${PLAN_FIELD_SEPARATOR}node${PLAN_FIELD_SEPARATOR}datacenter${PLAN_FIELD_SEPARATOR}…\n`;

/** Fixed fields of an acting line (addLines); `at` keeps one more position per line (its end). */
const LINE_FIELDS = PLAN_COLUMNS.length;
/** Field numbers of an acting line; its copies follow F_DIR. */
const F_VERDICT = 0;
const F_MTIME = 1;
const F_COPIES = 2;
const F_LENGTH = 3;
const F_SHARD = 4;
const F_KEY = 5;
const F_ETAG = 6;
const F_OBJECTID = 7;
const F_DIR = 8;
/** Per line in `at`: the separator before each fixed field, the end of the fixed fields, the line's end. */
const AT_PER_LINE = LINE_FIELDS + 2;

/** The verdicts an acting line may have: those that clean up (gc.plan.ts CLEANS_UP). */
const ACTING_VERDICTS: ReadonlyMap<string, Verdict> = new Map(
  (Object.keys(CLEANS_UP) as Verdict[]).filter((v) => CLEANS_UP[v]).map((v) => [v, v]),
);

export class GcActions {
  /** Per record. */
  readonly verdicts: Verdict[] = [];
  /**
   * Per record: the decision it came from (its plan line is then written by planLine, which
   * escapes what needs it), or, for a record of the scan's acting lines (addLines), the index in
   * `at` of its positions in `text`. Those records hold nothing the plan escapes (table-specs.ts
   * deleteRecordCleanSql), so their lines are the plan as they are. Their fields stay in the
   * scan's one string until read: no string per field and record (which lived as long as the
   * task, and whose garbage collection cost more than reading them, measured).
   */
  private readonly from: (RecordDecision | number)[] = [];
  /**
   * Acting lines: per line (AT_PER_LINE), the position of the separator before each fixed field,
   * the end of the last fixed field (a separator when copies follow), and the line's end (a typed
   * array grown by doubling: pushing ~11 numbers a line onto an array was ~5 ms of a 1M group's
   * addLines, measured).
   */
  private at = new Int32Array(0);
  private text = '';
  /** Records [textFrom, textTo) of `from` are the acting lines, in `text` order. */
  private textFrom = -1;
  private textTo = -1;

  get length(): number {
    return this.verdicts.length;
  }

  /** Only the decisions that act (cleanup); the others are no action. */
  static of(decisions: readonly RecordDecision[]): GcActions {
    const a = new GcActions();
    for (const d of decisions) if (d.cleanup) a.addDecision(d);
    return a;
  }

  /** A decision that acts (cleanup). */
  addDecision(d: RecordDecision): void {
    this.verdicts.push(d.verdict);
    this.from.push(d);
  }

  /**
   * The scan's acting lines (gc.scan.ts `acts`): plan lines of clean records, as DuckDB wrote
   * them. Once per GcActions.
   */
  addLines(text: string): void {
    if (this.textFrom >= 0) throw new RemoraError('Internal', 'gc actions: acting lines added twice');
    this.text = text;
    this.textFrom = this.from.length;
    // Room for lines of ~200 characters (grown when they are shorter).
    let at = new Int32Array(Math.max(64, Math.ceil(text.length / 200) * AT_PER_LINE));
    let n = 0;
    for (let start = 0; start < text.length;) {
      let end = text.indexOf(PLAN_LINE_SEPARATOR, start);
      if (end < 0) end = text.length;
      if (n + AT_PER_LINE > at.length) {
        const grown = new Int32Array(at.length * 2);
        grown.set(at);
        at = grown;
        this.at = at;
      }
      const base = n;
      at[n++] = start - 1;
      let p = start - 1;
      for (let i = 1; i <= LINE_FIELDS; i++) {
        p = text.indexOf(PLAN_FIELD_SEPARATOR, p + 1);
        if (p < 0 || p > end) {
          // The last fixed field ends the line when no copy follows.
          if (i === LINE_FIELDS) p = end;
          else
            throw new RemoraError('Internal', `gc scan: an acting record without its ${LINE_FIELDS} fields`);
        }
        at[n++] = p;
      }
      at[n++] = end;
      this.at = at;
      const verdict = ACTING_VERDICTS.get(this.field(base, F_VERDICT));
      if (verdict === undefined)
        throw new RemoraError('Internal', 'gc scan: an acting record of no acting verdict');
      this.verdicts.push(verdict);
      this.from.push(base);
      start = end + 1;
    }
    this.textTo = this.from.length;
  }

  /** Field f of acting line at `base` in `at`. */
  private field(base: number, f: number): string {
    return this.text.slice(this.at[base + f]! + 1, this.at[base + f + 1]);
  }

  /**
   * Each copy of acting line `base` (the node and datacenter pairs after its fixed fields),
   * without an object per copy; an empty datacenter is none.
   */
  private eachCopy(base: number, fn: (node: string, datacenter: string | undefined) => void): void {
    const s = this.text;
    const end = this.at[base + LINE_FIELDS + 1]!;
    for (let p = this.at[base + LINE_FIELDS]!; p < end;) {
      const a = s.indexOf(PLAN_FIELD_SEPARATOR, p + 1);
      if (a < 0 || a >= end) throw new RemoraError('Internal', 'gc scan: a copy without its datacenter');
      let b = s.indexOf(PLAN_FIELD_SEPARATOR, a + 1);
      if (b < 0 || b > end) b = end;
      fn(s.slice(p + 1, a), b > a + 1 ? s.slice(a + 1, b) : undefined);
      p = b;
    }
  }

  /** Record i's delete record: where it is, and what its cleanup is conditional on. */
  shard(i: number): string {
    const d = this.from[i]!;
    return typeof d === 'number' ? this.field(d, F_SHARD) : d.record.shard;
  }
  key(i: number): string {
    const d = this.from[i]!;
    return typeof d === 'number' ? this.field(d, F_KEY) : d.record.key;
  }
  etag(i: number): string {
    const d = this.from[i]!;
    return typeof d === 'number' ? this.field(d, F_ETAG) : d.record.etag;
  }
  mtime(i: number): number {
    const d = this.from[i]!;
    return typeof d === 'number' ? Number(this.field(d, F_MTIME)) : d.record.mtime;
  }
  /** Copies record i names. */
  copies(i: number): number {
    const d = this.from[i]!;
    return typeof d === 'number' ? Number(this.field(d, F_COPIES)) : d.copies;
  }
  /** Bytes of one of record i's copies, when the record says. */
  contentLength(i: number): number | undefined {
    const d = this.from[i]!;
    if (typeof d !== 'number') return d.contentLength;
    const cl = this.field(d, F_LENGTH);
    return cl === '' ? undefined : Number(cl);
  }
  /** Eligible records with copies: the objectId as the record spells it ('' otherwise). */
  objectId(i: number): string {
    const d = this.from[i]!;
    if (typeof d === 'number') return this.verdicts[i] === 'eligible' ? this.field(d, F_OBJECTID) : '';
    return d.verdict === 'eligible' && d.tombstone.length > 0 ? d.tombstone[0]!.objectId : '';
  }

  /** Record i's copies to move (none unless eligible). */
  tombstone(i: number): CopyRef[] {
    const d = this.from[i]!;
    if (typeof d !== 'number') return [...d.tombstone];
    if (this.verdicts[i] !== 'eligible') return [];
    const owner = this.field(d, F_DIR);
    const objectId = this.field(d, F_OBJECTID);
    const out: CopyRef[] = [];
    this.eachCopy(d, (node, datacenter) =>
      out.push(datacenter !== undefined ? { node, datacenter, owner, objectId } : { node, owner, objectId }),
    );
    return out;
  }

  /** Whether record i moves copies (eligible, with copies). */
  movesCopies(i: number): boolean {
    if (this.verdicts[i] !== 'eligible') return false;
    const d = this.from[i]!;
    // A copy follows the fixed fields when a separator ends them (not the line's end).
    return typeof d === 'number'
      ? this.at[d + LINE_FIELDS]! < this.at[d + LINE_FIELDS + 1]!
      : d.tombstone.length > 0;
  }

  /** Whether any record moves copies. */
  hasMoves(): boolean {
    for (let i = 0; i < this.length; i++) if (this.movesCopies(i)) return true;
    return false;
  }

  /** Add the nodes of record i's copies to `nodes`, each once (no object per copy). */
  addNodes(i: number, nodes: string[]): void {
    const d = this.from[i]!;
    if (typeof d !== 'number') {
      for (const c of d.tombstone) if (!nodes.includes(c.node)) nodes.push(c.node);
      return;
    }
    if (this.verdicts[i] !== 'eligible') return;
    this.eachCopy(d, (node) => {
      if (!nodes.includes(node)) nodes.push(node);
    });
  }

  /** Record i as a decision (without `detail`, which only examples carry). */
  decision(i: number): RecordDecision {
    const d: RecordDecision = {
      record: { shard: this.shard(i), key: this.key(i), etag: this.etag(i), mtime: this.mtime(i) },
      verdict: this.verdicts[i]!,
      tombstone: this.verdicts[i] === 'eligible' ? this.tombstone(i) : [],
      cleanup: true,
      copies: this.copies(i),
    };
    const cl = this.contentLength(i);
    if (cl !== undefined) d.contentLength = cl;
    return d;
  }

  /** Record i's line of the plan (planLine's text). */
  planLine(i: number): string {
    const d = this.from[i]!;
    return typeof d === 'number'
      ? this.text.slice(this.at[d]! + 1, this.at[d + LINE_FIELDS + 1])
      : planLine(d);
  }

  /**
   * The plan as UTF-8 buffers, made as they are read: PLAN_HEADER, then each record's line in
   * order; the acting lines are DuckDB's text as it came (no line rebuilt in JavaScript: building
   * and encoding 11 MB of JSON lines was a third of a 1M group's time in Node, docs/gc.md), encoded
   * ~1 MiB at a time, cut after a line (a buffer of the whole text per task held its bytes twice
   * and raised the peak RSS of long runs, measured).
   */
  *planChunks(): Generator<Buffer> {
    yield Buffer.from(PLAN_HEADER);
    const lines = (from: number, to: number) =>
      to > from ? chunked(to - from, (i) => planLine(this.from[from + i] as RecordDecision)) : [];
    if (this.textFrom < 0) {
      yield* lines(0, this.length);
      return;
    }
    yield* lines(0, this.textFrom);
    const t = this.text;
    for (let start = 0; start < t.length;) {
      let end =
        start + PLAN_CHUNK >= t.length ? t.length : t.indexOf(PLAN_LINE_SEPARATOR, start + PLAN_CHUNK);
      if (end < 0) end = t.length;
      yield Buffer.from(`${t.slice(start, end)}${PLAN_LINE_SEPARATOR}`);
      start = end + 1;
    }
    yield* lines(this.textTo, this.length);
  }
}

function chunked(n: number, line: (i: number) => string): Buffer[] {
  const chunks: Buffer[] = [];
  let buf = Buffer.allocUnsafe(PLAN_CHUNK);
  let off = 0;
  // Lines are joined into a string of up to PLAN_BATCH characters, written with one call: a
  // Buffer write per line cost more than making the lines (measured, docs/gc.md "Bench").
  let batch = '';
  const flush = () => {
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    if (off + batch.length * 3 > buf.length) {
      if (off > 0) chunks.push(buf.subarray(0, off));
      buf = Buffer.allocUnsafe(Math.max(PLAN_CHUNK, batch.length * 3));
      off = 0;
    }
    off += buf.write(batch, off);
    batch = '';
  };
  for (let i = 0; i < n; i++) {
    batch += `${line(i)}${PLAN_LINE_SEPARATOR}`;
    if (batch.length >= PLAN_BATCH) flush();
  }
  if (batch.length > 0) flush();
  if (off > 0) chunks.push(buf.subarray(0, off));
  return chunks;
}
const PLAN_BATCH = 1 << 16;
const PLAN_CHUNK = 1 << 20;

/** What the plan escapes in a field (PostgreSQL COPY TEXT's escapes). */
const NEEDS_ESCAPE = /[\t\n\r\\]/g;
const ESCAPES: Readonly<Record<string, string>> = { '\t': '\\t', '\n': '\\n', '\r': '\\r', '\\': '\\\\' };
const UNESCAPES: Readonly<Record<string, string>> = { t: '\t', n: '\n', r: '\r', '\\': '\\' };

/** A field of a plan line: itself, unless it holds what the plan escapes. */
function planField(s: string): string {
  return s.replace(NEEDS_ESCAPE, (c) => ESCAPES[c]!);
}

/**
 * One line of the plan (PLAN_HEADER): the decision's verdict, its delete record's mtime, copies,
 * contentLength (empty for none), shard, key and etag, and for an eligible record with copies
 * its objectId, directory and each copy's node and datacenter (empty for none). The scan's
 * acting lines are this same text for the records it decides (test/gc-scan.test.ts).
 */
export function planLine(d: RecordDecision): string {
  const r = d.record;
  let line = `${d.verdict}\t${r.mtime}\t${d.copies}\t${d.contentLength ?? ''}\t${planField(r.shard)}\t${planField(
    r.key,
  )}\t${planField(r.etag)}\t`;
  const first = d.verdict === 'eligible' ? d.tombstone[0] : undefined;
  if (first === undefined) return `${line}\t`;
  line += `${planField(first.objectId)}\t${planField(first.owner)}`;
  for (const c of d.tombstone) line += `\t${planField(c.node)}\t${planField(c.datacenter ?? '')}`;
  return line;
}

/** One line of a plan, read back (tests, and tools reading plans): the fields planLine wrote. */
export function readPlanLine(line: string): {
  verdict: string;
  mtime: number;
  copies: number;
  contentLength?: number;
  shard: string;
  key: string;
  etag: string;
  objectId: string;
  directory: string;
  copiesOnNodes: { node: string; datacenter?: string }[];
} {
  const f = line
    .split(PLAN_FIELD_SEPARATOR)
    .map((x) => x.replace(/\\(.)/g, (all, c: string) => UNESCAPES[c] ?? all));
  if (f.length < LINE_FIELDS || (f.length - LINE_FIELDS) % 2 !== 0)
    throw new RemoraError('UsageError', `not a gc plan line: ${JSON.stringify(line.slice(0, 200))}`);
  return {
    verdict: f[F_VERDICT]!,
    mtime: Number(f[F_MTIME]),
    copies: Number(f[F_COPIES]),
    ...(f[F_LENGTH] === '' ? {} : { contentLength: Number(f[F_LENGTH]) }),
    shard: f[F_SHARD]!,
    key: f[F_KEY]!,
    etag: f[F_ETAG]!,
    objectId: f[F_OBJECTID]!,
    directory: f[F_DIR]!,
    copiesOnNodes: copiesOfFields(f, LINE_FIELDS),
  };
}

/**
 * The copies of a line split into fields `f`, from field `from` on: each a node and its datacenter
 * (empty: none). A plan line's (readPlanLine) and a `gc_line`'s (gc.scan.ts).
 */
export function copiesOfFields(f: readonly string[], from: number): { node: string; datacenter?: string }[] {
  const out: { node: string; datacenter?: string }[] = [];
  for (let i = from; i + 1 < f.length; i += 2)
    out.push(f[i + 1] !== '' ? { node: f[i]!, datacenter: f[i + 1]! } : { node: f[i]! });
  return out;
}

/** The plan of `decisions` (PLAN_HEADER, then planLine per line), as planChunks writes it. */
export function planChunks(decisions: readonly RecordDecision[]): Buffer[] {
  return [Buffer.from(PLAN_HEADER), ...chunked(decisions.length, (i) => planLine(decisions[i]!))];
}
