/**
 * GC's read of one partition group, and the decision of every delete record in it. Unpack
 * partitions both tables by objectId, so the live rows that matter are in the same group of
 * every shard (src/dumps/partition-inputs.ts). Memory: the group's delete records, and the live
 * rows naming their objectIds, not the group's whole namespace.
 *
 * DuckDB computes, per delete record, the facts the rules read (gc.plan.ts RecordFacts): whether a
 * live `manta` object row names its objectId on any shard, and the latest `_mtime` of the
 * objectId's records. It does so only for objectIds every record of which passes the checks of
 * `CLEAN` below: checks that imply gc.plan.ts parseDeleteValue accepts the record and reads the
 * same fields from it. The verdict is still gc.plan.ts's (`verdictOf` on those facts, for every
 * record). Any other objectId travels with its records' raw text and is decided by
 * `decideObject` exactly as written. Both ways are tested equal (test/gc-scan.test.ts:
 * adversarial records, and random ones against the rows as written).
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { DEFAULT_MAX_EXAMPLES } from '../../core/run-report.js';
import { sqlString } from '../../dumps/duckdb.js';
import { addToBacklog, emptyBacklog, type GcBacklog } from './gc.backlog.js';
import {
  CLEANS_UP,
  decideObject,
  decisionOf,
  verdictOf,
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

/**
 * The fields of a delete record's `_value` the decision reads (parseDeleteValue), each as its JSON
 * text, by DuckDB's strict transform: a value missing any of them, holding one twice, or not JSON
 * gives NULL (the record then travels raw). JSON text, not VARCHAR: DuckDB casts a number to
 * VARCHAR where JSON.parse would see a number; the text's first character tells the type.
 */
const DECISION_FIELDS = sqlString(
  JSON.stringify({
    objectId: 'JSON',
    owner: 'JSON',
    creator: 'JSON',
    contentLength: 'JSON',
    sharks: [{ manta_storage_id: 'JSON', datacenter: 'JSON' }],
  }),
);

/** Separators of the scan's one string: records, fields, and a shark's id and datacenter. */
const RS = '\x1d';
const FS = '\x1f';
const SS = '\x1e';
const chr = (c: string) => `chr(${c.charCodeAt(0)})`;

/** A JSON string without escapes (no `"`, `\` or control character inside): its text is `"` + value + `"`. */
const PLAIN = String.raw`"[^"\\\x00-\x1f]*"`;
const PLAIN_NONEMPTY = String.raw`"[^"\\\x00-\x1f]+"`;
const plain = (x: string, re = PLAIN) => `coalesce(regexp_full_match(${x}::VARCHAR, '${re}'), false)`;
/** A JSON string's value, for a PLAIN one. */
const unquote = (x: string) => `(${x}::VARCHAR)[2:-2]`;
const UUID = '"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"';

/**
 * A record DuckDB may give the decision as facts: each condition implies what parseDeleteValue
 * checks, read the same way (anything else travels raw, to be judged as written):
 * - `_key` is `/<objectId>/<digits>` (ASCII, so DuckDB's lower() is JavaScript's), naming the
 *   objectId the record is grouped under; `_mtime`, `_etag` and the shard present;
 * - `_value` parses, and strictly: DuckDB's JSON reader also takes trailing commas and NaN /
 *   Infinity, which JSON.parse refuses, so any text that could hold one travels raw;
 * - objectId is a string (ASCII letters, digits, dashes) naming the same objectId; owner a
 *   non-empty string; creator null or a string; contentLength null or an integer of at most 15
 *   digits (Number() of its text is then the value JSON.parse gives; DuckDB writes -0 as 0, so
 *   a value that could hold -0 travels raw); sharks a list of objects
 *   with a non-empty string id and a null or string datacenter; when there are copies, their
 *   directory (creator, else owner) is a uuid;
 * - no string the plan or the decision carries holds `"`, `\` or a control character (JSON
 *   escapes, and the scan's separators).
 */
const CLEAN = `f IS NOT NULL AND _mtime IS NOT NULL AND _etag IS NOT NULL AND shard IS NOT NULL
  AND coalesce(regexp_full_match(_key, '/[0-9A-Za-z-]+/[0-9]+'), false)
  AND lower(split_part(_key, '/', 2)) = oid
  AND NOT coalesce(regexp_matches(_etag || shard, '${String.raw`["\\\x00-\x1f]`}'), true)
  AND NOT coalesce(regexp_matches(_value, '${String.raw`(?i),\s*[}\]]|[:\[,]\s*[-+]?(?:nan|inf)`}'), true)
  AND coalesce(regexp_full_match(f.objectId::VARCHAR, '"[0-9A-Za-z-]+"'), false)
  AND lower(${unquote('f.objectId')}) = oid
  AND ${plain('f.owner', PLAIN_NONEMPTY)}
  AND (f.creator IS NULL OR ${plain('f.creator')})
  AND (f.contentLength IS NULL OR coalesce(regexp_full_match(f.contentLength::VARCHAR, '0|-?[1-9][0-9]{0,14}'), false))
  AND NOT (f.contentLength::VARCHAR = '0' AND contains(_value, '-0'))
  AND f.sharks IS NOT NULL
  AND coalesce(list_bool_and(list_transform(f.sharks, s -> s IS NOT NULL
    AND ${plain('s.manta_storage_id', PLAIN_NONEMPTY)} AND (s.datacenter IS NULL OR ${plain('s.datacenter')}))), true)
  AND (len(f.sharks) = 0 OR coalesce(regexp_full_match(dir::VARCHAR, '${UUID}'), false))`;

/**
 * One row: every delete record of the group, in (objectId, _mtime, _key) order, as one string
 * (records split by RS, fields by FS). An objectId all of whose records are CLEAN sends each as
 * `C mtime latest copies contentLength live shard key etag objectId dir sharks` (latest: the
 * objectId's latest `_mtime`; live: `[key, shard]` as JSON, or empty for none; contentLength
 * empty for none; dir: creator, else owner; sharks: id SS datacenter SS id …). Any other
 * objectId sends each record raw, every field JSON-encoded: `R oid _key _etag _mtime shard
 * liveKey liveShard _value`. Splitting one delimited string costs a fraction of reading DuckDB's
 * values one by one (each a native call and a decode) or of building and parsing JSON; the
 * separators are control characters, which JSON always escapes and CLEAN excludes.
 */
function scanSql(manta: readonly string[], deleteLog: readonly string[]): string {
  // A delete record whose _value is not JSON has no objectId column: its key names it.
  const deletes = `SELECT lower(coalesce(objectId, split_part(_key, '/', 2))) AS oid, _key, _etag, _mtime,
      shard, _value, try(json_transform_strict(_value, ${DECISION_FIELDS})) AS f
    FROM ${parquet(deleteLog)}`;
  const live =
    manta.length === 0
      ? 'SELECT NULL::VARCHAR AS oid, NULL::VARCHAR AS key, NULL::VARCHAR AS shard WHERE false'
      : `SELECT lower(objectId) AS oid, min(key) AS key, arg_min(shard, key) AS shard FROM ${parquet(manta)}
          WHERE type = 'object' AND objectId IS NOT NULL AND lower(objectId) IN (SELECT oid FROM d)
          GROUP BY 1`;
  const json = (x: string) => `coalesce(to_json(${x})::VARCHAR, 'null')`;
  return `WITH d AS (${deletes}),
    c AS (SELECT *, ${CLEAN} AS clean FROM (SELECT *,
        CASE WHEN f.creator IS NOT NULL AND f.creator::VARCHAR <> '""' THEN f.creator ELSE f.owner END AS dir
      FROM d)),
    o AS (SELECT oid, bool_and(clean) AS clean, max(_mtime) AS latest FROM c GROUP BY oid),
    l AS (${live}),
    j AS (SELECT c.oid, c._key, c._mtime, CASE WHEN o.clean
            THEN concat_ws(${chr(FS)}, 'C', c._mtime::VARCHAR, o.latest::VARCHAR, len(f.sharks)::VARCHAR,
                   coalesce(f.contentLength::VARCHAR, ''),
                   CASE WHEN l.key IS NULL THEN '' ELSE to_json([l.key, l.shard])::VARCHAR END,
                   c.shard, c._key, c._etag, ${unquote('f.objectId')}, ${unquote('dir')},
                   array_to_string(list_transform(f.sharks, s -> ${unquote('s.manta_storage_id')} || ${chr(SS)}
                     || coalesce(${unquote('s.datacenter')}, '')), ${chr(SS)}))
            ELSE concat_ws(${chr(FS)}, 'R', ${json('c.oid')}, ${json('c._key')}, ${json('c._etag')},
                   coalesce(c._mtime::VARCHAR, ''), ${json('c.shard')}, ${json('l.key')}, ${json('l.shard')},
                   ${json('c._value')}) END AS line
          FROM c JOIN o USING (oid) LEFT JOIN l USING (oid))
    SELECT coalesce(string_agg(line, ${chr(RS)} ORDER BY oid, _mtime, _key), '') AS rows, count(*) AS n
      FROM j`;
}

/** `manta` rows of the group whose `_value` is not JSON: they may name any objectId. */
function malformedLiveSql(manta: readonly string[]): string {
  return `SELECT _key, shard FROM ${parquet(manta)} WHERE NOT value_ok LIMIT 5`;
}

/** What DuckDB answers for a group: the records as one string (decideGroup reads it). */
export interface GroupRows {
  text: string;
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
): Promise<GroupRows> {
  if (files.deleteLog.length === 0) return { text: '', deleteRecords: 0, malformedLive: [] };
  const [text, n] = (await conn.runAndReadAll(scanSql(files.manta, files.deleteLog))).getRows()[0] as [
    string,
    bigint,
  ];
  const malformedLive =
    files.manta.length === 0
      ? []
      : (await conn.runAndReadAll(malformedLiveSql(files.manta)))
          .getRows()
          .map(([k, s]) => ({ key: String(k), shard: String(s) }));
  return { text, deleteRecords: Number(n), malformedLive };
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

  /** A record whose decision was not built (wants() said no): counted, and in the backlog. */
  count(verdict: Verdict, mtime: number, copies: number, contentLength: number | undefined): void {
    this.verdict(verdict);
    addToBacklog(this.backlog, verdict, mtime, copies, contentLength);
  }

  private verdict(verdict: Verdict) {
    this.decided++;
    let v = this.verdicts.get(verdict);
    if (!v) this.verdicts.set(verdict, (v = { n: 0, examples: [] }));
    v.n++;
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
 * Decide every delete record of queryGroup's string into `tally`: a CLEAN objectId's records by
 * gc.plan.ts verdictOf on the facts DuckDB computed, any other objectId's by decideObject on its
 * rows as written.
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
    const mtime = Number(f[1]);
    const copies = Number(f[3]);
    const contentLength = f[4] === '' ? undefined : Number(f[4]);
    let live: LiveRef | undefined;
    if (f[5] !== '') {
      const [key, shard] = JSON.parse(f[5]!) as [string, string];
      live = { key, shard };
    }
    const facts: RecordFacts = { mtime, latestMtime: Number(f[2]), live, copies };
    const verdict = verdictOf(facts, o);
    if (tally.wants(verdict)) {
      const record = { shard: f[6]!, key: f[7]!, etag: f[8]!, mtime };
      tally.add(decisionOf(record, verdict, facts, contentLength, () => sharksOf(f[11]!), f[10]!, f[9]!));
    } else tally.count(verdict, mtime, copies, contentLength);
  }
  flush();
  return tally;
}

/** queryGroup then decideGroup, on one connection. */
export async function scanGroup(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; deleteLog: readonly string[] },
  o: GcOptions,
  tally?: DecisionTally,
): Promise<{ rows: GroupRows; tally: DecisionTally }> {
  const rows = await queryGroup(conn, files);
  return { rows, tally: decideGroup(rows, o, tally) };
}
