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
import type { CopyRef, RecordDecision, Verdict } from './gc.plan.js';
import { GC_FIELD_SEPARATOR, GC_LINE_SEPARATOR, GC_SHARK_SEPARATOR } from '../../dumps/table-specs.js';

/** Separator of a shark's id and datacenter, and of one shark from the next, in `sharks` text. */
const SHARK_SEPARATOR = GC_SHARK_SEPARATOR;
/** Separators of the scan's acting lines (addLines): one record from the next, one field from the next. */
export const LINE_SEPARATOR = GC_LINE_SEPARATOR;
export const FIELD_SEPARATOR = GC_FIELD_SEPARATOR;

/** Fields of an acting line (addLines); `at` keeps one more separator position per line. */
const LINE_FIELDS = 10;
/** Field numbers of an acting line. */
const F_CLASS = 0;
const F_MTIME = 1;
const F_COPIES = 2;
const F_LENGTH = 3;
const F_SHARD = 4;
const F_KEY = 5;
const F_ETAG = 6;
const F_OBJECTID = 7;
const F_OWNER = 8;
const F_SHARKS = 9;

export class GcActions {
  /** Per record. */
  readonly verdicts: Verdict[] = [];
  /**
   * Per record: the decision it came from (its plan line is then written by planLine, which
   * escapes what JSON escapes), or, for a record of the scan's acting lines (addLines), the index
   * in `at` of its separator positions in `text`. Those records hold no string JSON would escape
   * (table-specs.ts deleteRecordCleanSql), so their lines are written as they are. Their fields
   * stay in the scan's one string until read: no string per field and record (which lived as
   * long as the task, and whose garbage collection cost more than reading them, measured).
   */
  private readonly from: (RecordDecision | number)[] = [];
  /**
   * Acting lines: per line, the position of the separator before each field and after the last
   * (a typed array grown by doubling: pushing ~11 numbers a line onto an array was ~5 ms of a
   * 1M group's addLines, measured).
   */
  private at = new Int32Array(0);
  private text = '';

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
   * The scan's acting lines (gc.scan.ts `acts`): records split by LINE_SEPARATOR, each `class
   * mtime copies contentLength shard key etag objectId dir sharks` split by FIELD_SEPARATOR
   * (class: gc.plan.ts VERDICT_BY_CLASS's index; contentLength empty for none; objectId, dir and
   * sharks — `node SS datacenter SS node …`, SHARK_SEPARATOR, an empty datacenter for none — only
   * when eligible). Once per GcActions.
   */
  addLines(text: string, verdictOfClass: readonly Verdict[]): void {
    if (this.text !== '') throw new RemoraError('Internal', 'gc actions: acting lines added twice');
    this.text = text;
    // Room for lines of ~200 characters (grown when they are shorter).
    let at = new Int32Array(Math.max(64, Math.ceil(text.length / 200) * (LINE_FIELDS + 1)));
    let n = 0;
    for (let start = 0; start < text.length;) {
      let end = text.indexOf(LINE_SEPARATOR, start);
      if (end < 0) end = text.length;
      if (n + LINE_FIELDS + 1 > at.length) {
        const grown = new Int32Array(at.length * 2);
        grown.set(at);
        at = grown;
        this.at = at;
      }
      const base = n;
      at[n++] = start - 1;
      let p = start - 1;
      for (let i = 1; i < LINE_FIELDS; i++) {
        p = text.indexOf(FIELD_SEPARATOR, p + 1);
        if (p < 0 || p > end)
          throw new RemoraError('Internal', `gc scan: an acting record without its ${LINE_FIELDS} fields`);
        at[n++] = p;
      }
      at[n++] = end;
      this.at = at;
      const verdict = verdictOfClass[Number(this.field(base, F_CLASS))];
      if (verdict === undefined) throw new RemoraError('Internal', 'gc scan: an acting record of no class');
      this.verdicts.push(verdict);
      this.from.push(base);
      start = end + 1;
    }
  }

  /** Field f of acting line at `base` in `at`. */
  private field(base: number, f: number): string {
    return this.text.slice(this.at[base + f]! + 1, this.at[base + f + 1]);
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
    const owner = this.field(d, F_OWNER);
    const objectId = this.field(d, F_OBJECTID);
    const out: CopyRef[] = [];
    eachShark(this.field(d, F_SHARKS), (node, datacenter) =>
      out.push(datacenter !== undefined ? { node, datacenter, owner, objectId } : { node, owner, objectId }),
    );
    return out;
  }

  /** Whether record i moves copies (eligible, with copies). */
  movesCopies(i: number): boolean {
    if (this.verdicts[i] !== 'eligible') return false;
    const d = this.from[i]!;
    return typeof d === 'number'
      ? this.at[d + F_SHARKS + 1]! > this.at[d + F_SHARKS]! + 1
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
    // eachShark's walk over the line's sharks field, without a callback or a string of the field.
    const s = this.text;
    const end = this.at[d + F_SHARKS + 1]!;
    for (let at = this.at[d + F_SHARKS]! + 1; at < end;) {
      const a = s.indexOf(SHARK_SEPARATOR, at);
      const node = s.slice(at, a);
      if (!nodes.includes(node)) nodes.push(node);
      const b = s.indexOf(SHARK_SEPARATOR, a + 1);
      at = b < 0 || b > end ? end : b + 1;
    }
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
    if (typeof d !== 'number') return planLine(d);
    let t = '';
    const verdict = this.verdicts[i]!;
    if (verdict === 'eligible') {
      const owner = this.field(d, F_OWNER);
      const objectId = this.field(d, F_OBJECTID);
      // eachShark's walk, without a callback per line.
      const s = this.text;
      const end = this.at[d + F_SHARKS + 1]!;
      for (let at = this.at[d + F_SHARKS]! + 1; at < end;) {
        const a = s.indexOf(SHARK_SEPARATOR, at);
        let b = s.indexOf(SHARK_SEPARATOR, a + 1);
        if (b < 0 || b > end) b = end;
        const copy = plainCopy(s.slice(at, a), b > a + 1 ? s.slice(a + 1, b) : undefined, owner, objectId);
        t = t === '' ? copy : `${t},${copy}`;
        at = b + 1;
      }
    }
    return plainLine(verdict, this.field(d, F_SHARD), this.field(d, F_KEY), this.field(d, F_ETAG), t);
  }

  /**
   * The plan as UTF-8 in buffers of 1 MiB or more, each line written straight into one: no
   * string of the whole plan (9 MB at 22k records) to build, flatten and copy again.
   */
  planChunks(): Buffer[] {
    return chunked(this.length, (i) => this.planLine(i));
  }
}

/**
 * Each copy of `sharks` text (`node SS datacenter SS node SS datacenter …`; an empty datacenter
 * for none), without an object per copy.
 */
export function eachShark(s: string, fn: (node: string, datacenter: string | undefined) => void): void {
  for (let at = 0; at < s.length;) {
    const a = s.indexOf(SHARK_SEPARATOR, at);
    const b = s.indexOf(SHARK_SEPARATOR, a + 1);
    const end = b < 0 ? s.length : b;
    fn(s.slice(at, a), end > a + 1 ? s.slice(a + 1, end) : undefined);
    at = end + 1;
  }
}

/** A tombstone entry of a plan line whose strings need no escaping (JSON.stringify's text). */
function plainCopy(node: string, datacenter: string | undefined, owner: string, objectId: string): string {
  return `{"node":"${node}",${datacenter !== undefined ? `"datacenter":"${datacenter}",` : ''}"owner":"${owner}","objectId":"${objectId}"}`;
}

/** A plan line whose strings need no escaping, its tombstone entries already written (`t`). */
function plainLine(verdict: Verdict, shard: string, key: string, etag: string, t: string): string {
  return `{"verdict":"${verdict}","shard":"${shard}","key":"${key}","etag":"${etag}","tombstone":[${t}]}`;
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
    batch += `${line(i)}\n`;
    if (batch.length >= PLAN_BATCH) flush();
  }
  if (batch.length > 0) flush();
  if (off > 0) chunks.push(buf.subarray(0, off));
  return chunks;
}
const PLAN_BATCH = 1 << 16;
const PLAN_CHUNK = 1 << 20;

/**
 * Characters after which a string's JSON is not `"` + itself + `"`: JSON.stringify escapes `"`,
 * `\`, control characters and lone surrogates (a valid pair is also matched here: the slow way
 * is then taken, which is only slower).
 */
// eslint-disable-next-line no-control-regex -- the control characters JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * One line of the plan: `JSON.stringify({verdict, shard, key, etag, tombstone})`, written out by
 * hand when no string needs escaping, which is ~5x faster (measured); else by JSON.stringify
 * itself. The same text either way (test/gc-plan.test.ts).
 */
export function planLine(d: RecordDecision): string {
  const r = d.record;
  let plain = !NEEDS_ESCAPE.test(r.shard) && !NEEDS_ESCAPE.test(r.key) && !NEEDS_ESCAPE.test(r.etag);
  for (const c of d.tombstone)
    plain &&=
      !NEEDS_ESCAPE.test(c.node) &&
      !(c.datacenter !== undefined && NEEDS_ESCAPE.test(c.datacenter)) &&
      !NEEDS_ESCAPE.test(c.owner) &&
      !NEEDS_ESCAPE.test(c.objectId);
  if (!plain)
    return JSON.stringify({
      verdict: d.verdict,
      shard: r.shard,
      key: r.key,
      etag: r.etag,
      tombstone: d.tombstone,
    });
  let t = '';
  for (const c of d.tombstone)
    t += `${t === '' ? '' : ','}${plainCopy(c.node, c.datacenter, c.owner, c.objectId)}`;
  return plainLine(d.verdict, r.shard, r.key, r.etag, t);
}

/** The plan of `decisions` (planLine per line), as planChunks writes it. */
export function planChunks(decisions: readonly RecordDecision[]): Buffer[] {
  return chunked(decisions.length, (i) => planLine(decisions[i]!));
}
