/**
 * The decisions of one partition group that act (remove a delete record, and move copies for
 * `eligible`), as columns: one entry per record, no object per decision. The scan fills it
 * straight from DuckDB's text for the records it decided in SQL (gc.scan.ts), and from
 * RecordDecision objects for the others (decideObject); the plan is written from it and the
 * apply reads it (gc.apply.ts applyActions). Measured (docs/gc.md "Bench"): a decision object,
 * its record, its copies and its plan line per acting record, then the apply's own objects, were
 * most of a group's time in Node and of its garbage collection.
 */
import type { CopyRef, RecordDecision, RecordRef, Verdict } from './gc.plan.js';

/** Separator of a shark's id and datacenter, and of one shark from the next, in `sharks` text. */
export const SHARK_SEPARATOR = '\x1e';

export class GcActions {
  /** Per record. */
  readonly verdicts: Verdict[] = [];
  readonly shards: string[] = [];
  readonly keys: string[] = [];
  readonly etags: string[] = [];
  readonly mtimes: number[] = [];
  /** Copies the record names, and the bytes of one (when the record says). */
  readonly copies: number[] = [];
  readonly contentLengths: (number | undefined)[] = [];
  /** Eligible records: the objectId as the record spells it and the copies' directory ('' otherwise). */
  readonly objectIds: string[] = [];
  readonly owners: string[] = [];
  /**
   * Eligible records: the copies to move, as `node SS datacenter SS node SS datacenter …`
   * (SHARK_SEPARATOR; an empty datacenter for none) for plain records, or the decision's own list.
   */
  readonly sharks: (string | readonly CopyRef[])[] = [];
  /**
   * The decision a record came from, if any: its plan line is then written by planLine, which
   * escapes what JSON escapes. Records added with addPlain hold no string JSON would escape
   * (table-specs.ts deleteRecordCleanSql), so their lines are written as they are.
   */
  private readonly from: (RecordDecision | undefined)[] = [];

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
    const eligible = d.verdict === 'eligible' && d.tombstone.length > 0;
    this.push(d.verdict, d.record, d.copies, d.contentLength);
    this.objectIds.push(eligible ? d.tombstone[0]!.objectId : '');
    this.owners.push(eligible ? d.tombstone[0]!.owner : '');
    this.sharks.push(d.tombstone);
    this.from.push(d);
  }

  /**
   * A record decided in SQL whose strings need no JSON escaping (gc_clean): `sharks` as
   * SHARK_SEPARATOR text, read only when the verdict is `eligible`.
   */
  addPlain(
    verdict: Verdict,
    record: RecordRef,
    copies: number,
    contentLength: number | undefined,
    objectId: string,
    owner: string,
    sharks: string,
  ): void {
    const eligible = verdict === 'eligible';
    this.push(verdict, record, copies, contentLength);
    this.objectIds.push(eligible ? objectId : '');
    this.owners.push(eligible ? owner : '');
    this.sharks.push(eligible ? sharks : '');
    this.from.push(undefined);
  }

  private push(verdict: Verdict, r: RecordRef, copies: number, contentLength: number | undefined) {
    this.verdicts.push(verdict);
    this.shards.push(r.shard);
    this.keys.push(r.key);
    this.etags.push(r.etag);
    this.mtimes.push(r.mtime);
    this.copies.push(copies);
    this.contentLengths.push(contentLength);
  }

  /** Record i's copies to move (none unless eligible). */
  tombstone(i: number): CopyRef[] {
    const s = this.sharks[i]!;
    if (typeof s !== 'string') return [...s];
    const owner = this.owners[i]!;
    const objectId = this.objectIds[i]!;
    const out: CopyRef[] = [];
    eachShark(s, (node, datacenter) =>
      out.push(datacenter !== undefined ? { node, datacenter, owner, objectId } : { node, owner, objectId }),
    );
    return out;
  }

  /** Whether record i moves copies (eligible, with copies). */
  movesCopies(i: number): boolean {
    return this.verdicts[i] === 'eligible' && this.sharks[i]!.length > 0;
  }

  /** Whether any record moves copies. */
  hasMoves(): boolean {
    for (let i = 0; i < this.length; i++) if (this.movesCopies(i)) return true;
    return false;
  }

  /** Add the nodes of record i's copies to `nodes`, each once (no object per copy). */
  addNodes(i: number, nodes: string[]): void {
    const s = this.sharks[i]!;
    const add = (node: string) => {
      if (!nodes.includes(node)) nodes.push(node);
    };
    if (typeof s !== 'string') for (const c of s) add(c.node);
    else eachShark(s, add);
  }

  /** Record i as a decision (without `detail`, which only examples carry). */
  decision(i: number): RecordDecision {
    const d: RecordDecision = {
      record: { shard: this.shards[i]!, key: this.keys[i]!, etag: this.etags[i]!, mtime: this.mtimes[i]! },
      verdict: this.verdicts[i]!,
      tombstone: this.verdicts[i] === 'eligible' ? this.tombstone(i) : [],
      cleanup: true,
      copies: this.copies[i]!,
    };
    const cl = this.contentLengths[i];
    if (cl !== undefined) d.contentLength = cl;
    return d;
  }

  /** Record i's line of the plan (planLine's text). */
  planLine(i: number): string {
    const from = this.from[i];
    if (from) return planLine(from);
    let t = '';
    const s = this.sharks[i]!;
    if (this.verdicts[i] === 'eligible') {
      const owner = this.owners[i]!;
      const objectId = this.objectIds[i]!;
      eachShark(s as string, (node, datacenter) => {
        t += `${t === '' ? '' : ','}${plainCopy(node, datacenter, owner, objectId)}`;
      });
    }
    return plainLine(this.verdicts[i]!, this.shards[i]!, this.keys[i]!, this.etags[i]!, t);
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
  for (let i = 0; i < n; i++) {
    const text = `${line(i)}\n`;
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    if (off + text.length * 3 > buf.length) {
      if (off > 0) chunks.push(buf.subarray(0, off));
      buf = Buffer.allocUnsafe(Math.max(PLAN_CHUNK, text.length * 3));
      off = 0;
    }
    off += buf.write(text, off);
  }
  if (off > 0) chunks.push(buf.subarray(0, off));
  return chunks;
}
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
