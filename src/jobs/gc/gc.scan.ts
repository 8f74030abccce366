/**
 * GC's read of one partition group, and the decision of every delete record in it. Unpack
 * partitions both tables by objectId, so the live rows that matter are in the same group of
 * every shard (src/dumps/partition-inputs.ts). Memory: the group's delete records, and the live
 * rows naming their objectIds, not the group's whole namespace.
 *
 * Clean objectIds (every record of which passes table-specs.ts deleteRecordCleanSql: written by
 * unpack as `gc_clean`, CHUNK_SCHEMA 3; computed here from `_value` on older chunks) are decided
 * in DuckDB from the chunk's typed columns: per record the comparisons the rules make (gc.plan.ts
 * FactClass: against the earliest snapshot, a live `manta` object row naming the objectId on any
 * shard, the objectId's latest `_mtime`, no copies, the grace), mapped to a verdict by gc.plan.ts
 * VERDICT_BY_CLASS (the rules stay there). DuckDB counts the records that do not act (waiting for
 * grace, not provable yet) into the backlog and sends only those that act or are among the first
 * examples of their verdict, each with only the fields its decision reads: Node does nothing per
 * record it does not act on. (Plan lines built by DuckDB were measured slower than Node's:
 * gc.job.ts planLine.) Any other objectId travels with its records' raw text and is decided by
 * `decideObject` exactly as written. Both ways are tested equal (test/gc-scan.test.ts:
 * adversarial records, and random ones against the rows as written, on new and old chunks).
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { DEFAULT_MAX_EXAMPLES } from '../../core/run-report.js';
import { RemoraError } from '../../core/errors.js';
import { sqlString } from '../../dumps/duckdb.js';
import { deleteRecordCleanSql, deleteRecordFieldsSql } from '../../dumps/table-specs.js';
import { addRecordsToBacklog, addToBacklog, emptyBacklog, type GcBacklog } from './gc.backlog.js';
import {
  CLEANS_UP,
  decideObject,
  decisionOf,
  FACT_CLASS_BITS,
  VERDICT_BY_CLASS,
  type FactClass,
  type DeleteRecord,
  type GcInput,
  type GcOptions,
  type LiveRef,
  type RecordDecision,
  type RecordFacts,
  type Verdict,
} from './gc.plan.js';

const parquet = (files: readonly string[]) =>
  `read_parquet([${files.map(sqlString).join(', ')}], union_by_name = true)`;

/** Separators of the scan's one string: records, fields, and a shark's id and datacenter. */
const RS = '\x1d';
const FS = '\x1f';
const SS = '\x1e';
const chr = (c: string) => `chr(${c.charCodeAt(0)})`;

/** How the scan reads a group (queryGroup). */
export interface ScanOptions extends GcOptions {
  /** Every delete-log chunk has `gc_clean` (manifest.ts hasGcCleanColumn); else computed from `_value`. */
  gcCleanColumn: boolean;
  /** Send every record to Node, not only those that act or are examples (tests compare them all). */
  all?: boolean;
}

const num = (x: number) => `CAST('${x}' AS DOUBLE)`;
const json = (x: string) => `coalesce(to_json(${x})::VARCHAR, 'null')`;

/**
 * The group's query; one row: `rows` (records sent to Node, in (objectId, _mtime, _key, shard)
 * order, records split by RS, fields by FS), `n` (delete records), `counted` (JSON: per verdict the clean records not
 * sent: count, copies, bytes, oldest `_mtime`).
 *
 * A clean record is sent as `class mtime latest copies contentLength live shard key etag
 * objectId dir sharks` (class: gc.plan.ts FactClass as a number, VERDICT_BY_CLASS's index;
 * latest: the objectId's latest `_mtime`, only for `superseded` (its detail); live: `[key,
 * shard]` as JSON, only for `live-reference`; contentLength empty for none; key empty when it is
 * `/<objectId>/<mtime>`; dir: creator, else owner; sharks: id SS datacenter SS id …). Any other objectId sends each record raw, every field JSON-encoded: `R oid _key _etag
 * _mtime shard liveKey liveShard _value`. Splitting one delimited string costs a fraction of
 * reading DuckDB's values one by one; the separators are control characters, which JSON always
 * escapes and a clean record does not hold.
 */
function scanSql(manta: readonly string[], deleteLog: readonly string[], o: ScanOptions): string {
  // A delete record whose _value is not JSON has no objectId column: its key names it.
  const clean = o.gcCleanColumn
    ? 'coalesce(gc_clean, false)'
    : deleteRecordCleanSql({
        f: 'gf',
        value: '_value',
        key: '_key',
        etag: '_etag',
        mtime: '_mtime',
        shard: 'shard',
      });
  const from = o.gcCleanColumn
    ? parquet(deleteLog)
    : `(SELECT *, ${deleteRecordFieldsSql('_value')} AS gf FROM ${parquet(deleteLog)})`;
  const deletes = `SELECT lower(coalesce(objectId, split_part(_key, '/', 2))) AS oid, _key, _etag, _mtime,
      shard, _value, objectId, owner, creator, contentLength, sharks, ${clean} AS clean FROM ${from}`;
  const live =
    manta.length === 0
      ? 'SELECT NULL::VARCHAR AS oid, NULL::VARCHAR AS key, NULL::VARCHAR AS shard WHERE false'
      : `SELECT lower(objectId) AS oid, min(key) AS key, arg_min(shard, key) AS shard FROM ${parquet(manta)}
          WHERE type = 'object' AND objectId IS NOT NULL AND lower(objectId) IN (SELECT oid FROM d)
          GROUP BY 1`;
  // gc.plan.ts classOf, bit by bit (FACT_CLASS_BITS), in doubles as JavaScript compares.
  const bits: Record<keyof FactClass, string> = {
    notProvable: `_mtime::DOUBLE >= ${num(o.earliestSnapshotMs)}`,
    live: 'lkey IS NOT NULL',
    later: '_mtime::DOUBLE < latest::DOUBLE',
    noCopies: 'len(sharks) = 0',
    inGrace: `${num(o.now)} - _mtime::DOUBLE <= ${num(o.graceMs)}`,
  };
  const cls = FACT_CLASS_BITS.map((b, i) => `CASE WHEN ${bits[b]} THEN ${1 << i} ELSE 0 END`).join(' + ');
  const verdicts = `[${VERDICT_BY_CLASS.map(sqlString).join(', ')}]`;
  const acting = (Object.keys(CLEANS_UP) as Verdict[])
    .filter((v) => CLEANS_UP[v])
    .map(sqlString)
    .join(', ');
  const order = 'ORDER BY oid, _mtime, _key, shard';
  // Materialized where read more than once and costly to recompute; `_value` (read only for
  // objectIds that are not clean) is dropped from the clean records' CTEs: copying it with every
  // materialization cost more than the rest of the query.
  return `WITH d AS ${o.gcCleanColumn ? '' : 'MATERIALIZED'} (${deletes}),
    o AS (SELECT oid, bool_and(clean) AS clean, max(_mtime) AS latest FROM d GROUP BY oid),
    l AS (${live}),
    r AS MATERIALIZED (SELECT d.*, o.clean AS oclean, o.latest, l.key AS lkey, l.shard AS lshard
          FROM d JOIN o USING (oid) LEFT JOIN l USING (oid)),
    k AS MATERIALIZED (SELECT *, ${verdicts}[1 + cls] AS v FROM (SELECT * EXCLUDE (_value), ${cls} AS cls,
            CASE WHEN creator IS NOT NULL AND creator <> '' THEN creator ELSE owner END AS dir
          FROM r WHERE oclean)),
    x AS (SELECT *, true AS sent FROM k WHERE v IN (${acting})
      UNION ALL
      SELECT *, ${o.all ? 'true' : `row_number() OVER (PARTITION BY v ${order}) <= ${DEFAULT_MAX_EXAMPLES}`} AS sent
        FROM k WHERE v NOT IN (${acting})),
    lines AS (
      SELECT oid, _mtime, _key, shard, concat_ws(${chr(FS)}, cls::VARCHAR, _mtime::VARCHAR,
          CASE WHEN v = 'superseded' THEN latest::VARCHAR ELSE '' END,
          len(sharks)::VARCHAR, coalesce(contentLength::VARCHAR, ''),
          CASE WHEN v = 'live-reference' THEN to_json([lkey, lshard])::VARCHAR ELSE '' END,
          shard, CASE WHEN _key = '/' || objectId || '/' || _mtime::VARCHAR THEN '' ELSE _key END, _etag, objectId, dir,
          array_to_string(list_transform(sharks, s -> s.manta_storage_id || ${chr(SS)}
            || coalesce(s.datacenter, '')), ${chr(SS)})) AS line
        FROM x WHERE sent
      UNION ALL
      SELECT oid, _mtime, _key, shard, concat_ws(${chr(FS)}, 'R', ${json('oid')}, ${json('_key')},
          ${json('_etag')}, coalesce(_mtime::VARCHAR, ''), ${json('shard')}, ${json('lkey')}, ${json('lshard')},
          ${json('_value')}) AS line
        FROM r WHERE NOT oclean)
    SELECT (SELECT coalesce(string_agg(line, ${chr(RS)} ${order}), '') FROM lines) AS rows,
      (SELECT count(*) FROM d) AS n,
      (SELECT coalesce(to_json(list({'verdict': v, 'n': n, 'copies': copies, 'bytes': bytes, 'oldest': oldest}))::VARCHAR, '[]')
        FROM (SELECT v, count(*) AS n, sum(len(sharks))::DOUBLE AS copies,
                sum(len(sharks) * coalesce(contentLength, 0))::DOUBLE AS bytes, min(_mtime)::DOUBLE AS oldest
              FROM x WHERE NOT sent GROUP BY v)) AS counted`;
}

/** `manta` rows of the group whose `_value` is not JSON: they may name any objectId. */
function malformedLiveSql(manta: readonly string[]): string {
  return `SELECT _key, shard FROM ${parquet(manta)} WHERE NOT value_ok LIMIT 5`;
}

/** Clean records DuckDB decided and did not send (queryGroup `counted`), per verdict. */
export interface CountedRecords {
  verdict: Exclude<Verdict, 'malformed'>;
  n: number;
  copies: number;
  bytes: number;
  oldest: number;
}

/** What DuckDB answers for a group (decideGroup reads it). */
export interface GroupRows {
  /** The records sent to Node, as one string (scanSql). */
  text: string;
  /** Clean records not sent: counted only. */
  counted: CountedRecords[];
  deleteRecords: number;
  /** Examples (up to 5) of live rows whose `_value` is not JSON; the re-check still guards them. */
  malformedLive: { key: string; shard: string }[];
}

/**
 * The group's query, alone: callers hold the process's DuckDB turn only for this, and decide
 * after releasing it, so one task's JavaScript overlaps the next task's query.
 */
export async function queryGroup(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; deleteLog: readonly string[] },
  o: ScanOptions,
): Promise<GroupRows> {
  if (files.deleteLog.length === 0) return { text: '', counted: [], deleteRecords: 0, malformedLive: [] };
  const [text, n, counted] = (
    await conn.runAndReadAll(scanSql(files.manta, files.deleteLog, o))
  ).getRows()[0] as [string, bigint, string];
  const malformedLive =
    files.manta.length === 0
      ? []
      : (await conn.runAndReadAll(malformedLiveSql(files.manta)))
          .getRows()
          .map(([k, s]) => ({ key: String(k), shard: String(s) }));
  return {
    text,
    counted: JSON.parse(counted) as CountedRecords[],
    deleteRecords: Number(n),
    malformedLive,
  };
}

/**
 * A group's decisions, counted as they are made: per verdict the count and the first examples,
 * the backlog, and the decisions that act (cleanup, with or without copies to move). A record
 * that neither acts nor is an example (waiting for grace, not provable yet) is only counted:
 * no decision object is built for it.
 */
export class DecisionTally {
  /** Decisions that remove the delete record (and move copies, for `eligible`), in scan order. */
  readonly actions: RecordDecision[] = [];
  readonly verdicts = new Map<Verdict, { n: number; examples: RecordDecision[] }>();
  readonly backlog: GcBacklog = emptyBacklog();
  decided = 0;
  /** Every decision, when asked for (tests). */
  readonly all: RecordDecision[] | undefined;

  constructor(opts: { all?: boolean } = {}) {
    this.all = opts.all ? [] : undefined;
  }

  /** Whether a decision of this verdict must be built (it acts, is an example, or all are kept). */
  wants(verdict: Verdict): boolean {
    if (CLEANS_UP[verdict] || this.all) return true;
    const v = this.verdicts.get(verdict);
    return !v || v.examples.length < DEFAULT_MAX_EXAMPLES;
  }

  add(d: RecordDecision): void {
    const v = this.verdict(d.verdict);
    if (v.examples.length < DEFAULT_MAX_EXAMPLES) v.examples.push(d);
    addToBacklog(this.backlog, d.verdict, d.record.mtime, d.copies, d.contentLength);
    if (d.cleanup) this.actions.push(d);
    this.all?.push(d);
  }

  /** Records counted by DuckDB (neither acting nor examples): the same counts and backlog as count() of each. */
  countMany(c: CountedRecords): void {
    if (c.verdict !== 'waiting-grace' && c.verdict !== 'not-provable')
      throw new RemoraError('Internal', `gc scan: ${c.verdict} records must be sent, not counted`);
    this.verdict(c.verdict, c.n);
    addRecordsToBacklog(this.backlog, c.verdict, {
      records: c.n,
      copies: c.copies,
      bytes: c.bytes,
      oldestMs: c.oldest,
    });
  }

  /** A record whose decision was not built (wants() said no): counted, and in the backlog. */
  count(verdict: Verdict, mtime: number, copies: number, contentLength: number | undefined): void {
    this.verdict(verdict);
    addToBacklog(this.backlog, verdict, mtime, copies, contentLength);
  }

  private verdict(verdict: Verdict, n = 1) {
    this.decided += n;
    let v = this.verdicts.get(verdict);
    if (!v) this.verdicts.set(verdict, (v = { n: 0, examples: [] }));
    v.n += n;
    return v;
  }
}

type Str = string | null;

/** One raw record: its grouping key, the delete record, and the live reference of its objectId. */
function decodeRaw(f: string[]): { oid: string; record: DeleteRecord; liveKey: Str; liveShard: Str } {
  const j = (x: string | undefined) => JSON.parse(x!) as Str;
  return {
    oid: j(f[1]) ?? '',
    liveKey: j(f[6]),
    liveShard: j(f[7]),
    record: {
      key: j(f[2]) ?? '',
      etag: j(f[3]) ?? '',
      mtime: f[4] === '' ? Number.NaN : Number(f[4]),
      shard: j(f[5]) ?? '',
      value: j(f[8]) ?? '',
    },
  };
}

function sharksOf(text: string): { node: string; datacenter?: string }[] {
  const out: { node: string; datacenter?: string }[] = [];
  if (text === '') return out;
  const s = text.split(SS);
  for (let i = 0; i < s.length; i += 2)
    out.push(s[i + 1] ? { node: s[i]!, datacenter: s[i + 1]! } : { node: s[i]! });
  return out;
}

/**
 * Decide every delete record of queryGroup's answer into `tally`: a clean objectId's records by
 * the verdict DuckDB gave them (gc.plan.ts VERDICT_BY_CLASS of their class), any other
 * objectId's by decideObject on its rows as written; then the records DuckDB only counted.
 */
export function decideGroup(rows: GroupRows, o: GcOptions, tally = new DecisionTally()): DecisionTally {
  let raw: (GcInput & { live: LiveRef[]; deletes: DeleteRecord[] }) | undefined;
  const flush = () => {
    if (raw) for (const d of decideObject(raw, o)) tally.add(d);
    raw = undefined;
  };
  for (const line of rows.text === '' ? [] : rows.text.split(RS)) {
    const f = line.split(FS);
    if (f[0] === 'R') {
      const { oid, record, liveKey, liveShard } = decodeRaw(f);
      if (!raw || raw.objectId !== oid) {
        flush();
        raw = { objectId: oid, live: [], deletes: [] };
        if (liveKey !== null) raw.live.push({ key: liveKey, shard: liveShard ?? '' });
      }
      raw.deletes.push(record);
      continue;
    }
    flush();
    const verdict = VERDICT_BY_CLASS[Number(f[0])]!;
    const mtime = Number(f[1]);
    const copies = Number(f[3]);
    const contentLength = f[4] === '' ? undefined : Number(f[4]);
    if (!tally.wants(verdict)) {
      tally.count(verdict, mtime, copies, contentLength);
      continue;
    }
    let live: LiveRef | undefined;
    if (f[5] !== '') {
      const [key, shard] = JSON.parse(f[5]!) as [string, string];
      live = { key, shard };
    }
    // latestMtime is only read (detailOf) when a later record made this one superseded.
    const facts: RecordFacts = { mtime, latestMtime: f[2] === '' ? mtime : Number(f[2]), live, copies };
    const objectId = f[9]!;
    const record = { shard: f[6]!, key: f[7] === '' ? `/${objectId}/${f[1]}` : f[7]!, etag: f[8]!, mtime };
    tally.add(decisionOf(record, verdict, facts, contentLength, () => sharksOf(f[11]!), f[10]!, objectId));
  }
  flush();
  for (const c of rows.counted) tally.countMany(c);
  return tally;
}

/** queryGroup then decideGroup, on one connection (every record sent when `tally` keeps them all). */
export async function scanGroup(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; deleteLog: readonly string[] },
  o: GcOptions & { gcCleanColumn: boolean },
  tally?: DecisionTally,
): Promise<{ rows: GroupRows; tally: DecisionTally }> {
  const rows = await queryGroup(conn, files, { ...o, all: tally?.all !== undefined });
  return { rows, tally: decideGroup(rows, o, tally) };
}
