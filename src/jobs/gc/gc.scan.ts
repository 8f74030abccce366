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
 * VERDICT_BY_CLASS (the rules stay there). DuckDB counts every clean record per verdict (counts,
 * backlog), sends the first examples of each verdict whole, and sends the records that act as
 * their plan lines in no order (gc.actions.ts PLAN_HEADER), which Node keeps as they came
 * (GcActions.addLines: the string and each line's separator positions, no object or string per
 * record; the plan is that text, and the apply runs from it, reading a field when needed). Node
 * does nothing per record that does not act. Any other objectId travels with its records' raw text and is decided by
 * `decideObject` exactly as written. Both ways are tested equal (test/gc-scan.test.ts:
 * adversarial records, and random ones against the rows as written, on new and old chunks).
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { DEFAULT_MAX_EXAMPLES } from '../../core/run-report.js';
import { sqlString } from '../../dumps/duckdb.js';
import { hasGcCleanColumn, hasGcLineColumn, hasOidUuidColumn } from '../../dumps/manifest.js';
import {
  deleteRecordCleanSql,
  deleteRecordFieldsSql,
  GC_FIELD_SEPARATOR,
  GC_LINE_SEPARATOR,
  gcLineSql,
  oidUuidSql,
  sqlChr,
} from '../../dumps/table-specs.js';
import { copiesOfFields, GcActions } from './gc.actions.js';
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

/**
 * Separators of the scan's text: records, fields (table-specs.ts gcLineSql's, so that a clean
 * record's line is a run of fields; every other field is a number or JSON, which escapes both).
 */
const RS = GC_LINE_SEPARATOR;
const FS = GC_FIELD_SEPARATOR;

/** The verdicts a clean record can have (every one but `malformed`). */
const VERDICTS = [...new Set(VERDICT_BY_CLASS)];

/** How the scan reads a group (queryGroup). */
export interface ScanOptions extends GcOptions {
  /** Every delete-log chunk has `gc_clean` (manifest.ts hasGcCleanColumn); else computed from `_value`. */
  gcCleanColumn: boolean;
  /**
   * Every `manta` chunk has `oid_uuid` (manifest.ts hasOidUuidColumn): the live join compares
   * UUIDs, and only objectIds that are not uuids by text. Else every objectId by lower-cased text.
   */
  oidUuidColumn?: boolean;
  /**
   * With `oidUuidColumn`: some `manta` chunk may hold an objectId that is not a uuid (liveTextOf):
   * the live join also reads those by text. False only when every chunk counted none.
   */
  liveText?: boolean;
  /** Every delete-log chunk has `gc_line` (CHUNK_SCHEMA 5, table-specs.ts gcLineSql); else computed. */
  gcLineColumn?: boolean;
  /**
   * Some `manta` chunk of the group may hold rows whose `_value` is not JSON (malformedLiveSql):
   * false only when every chunk counted none (ChunkInfo.valueNotJson, CHUNK_SCHEMA 5).
   */
  malformedLive?: boolean;
  /** Send every record to Node, not only those that act or are examples (tests compare them all). */
  all?: boolean;
}

const num = (x: number) => `CAST('${x}' AS DOUBLE)`;
const json = (x: string) => `coalesce(to_json(${x})::VARCHAR, 'null')`;

/**
 * The group's query; rows `(p, s, v, n, copies, bytes, oldest)`, one per output (each its own
 * aggregate over the columns it reads: one aggregate over a tagged union of every record with
 * every column cost ~25% more of the query's CPU, measured in the fifth pass, docs/gc.md):
 *   p 1  s: every clean record that acts (removes its delete record), in no order, as its plan
 *        line (GcActions.addLines);
 *   p 2  s: in (objectId, _mtime, _key, shard) order, records split by RS, fields by FS: the
 *        first DEFAULT_MAX_EXAMPLES clean records of each verdict (every clean record with
 *        `all`), whole, as examples; and every record of any other objectId, raw;
 *   p 3  n: delete records;
 *   p 4  one row per verdict of clean records: v, and n, copies, bytes, oldest `_mtime` of them.
 *
 * A clean record's text is its `gc_line` (table-specs.ts gcLineSql: `mtime copies contentLength
 * shard key etag objectId dir`, then each shark's `id datacenter`, written by unpack, CHUNK_SCHEMA 5,
 * or computed here on older chunks), so its columns and `sharks` list are read and assembled once,
 * at unpack. An acting record is its verdict and its line when eligible, else its verdict and the
 * line's first six fields (the plan's columns); an example `class latest live` and its
 * line (latest: the objectId's latest `_mtime`, only for `superseded`, its detail; live: `[key,
 * shard]` as JSON, only for `live-reference`). A record that is not clean has every field
 * JSON-encoded: `R oid _key _etag _mtime shard liveKey liveShard _value`; a clean record of such an
 * objectId is `C oid liveKey liveShard` (JSON) and its line, which holds what decideObject reads of
 * its `_value` (deleteRecordCleanSql), so `_value` is only read for the records that are not clean.
 * Splitting one delimited string costs a fraction of reading DuckDB's values one by one; the
 * separators are a tab and a newline, which JSON always escapes and a clean record does not hold.
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
  // Each row's file and position: what the records that are not clean find their `_value` by.
  const rows = (files: readonly string[]) =>
    `read_parquet([${files.map(sqlString).join(', ')}], union_by_name = true, filename = true, file_row_number = true)`;
  const from = o.gcCleanColumn
    ? rows(deleteLog)
    : `(SELECT *, ${deleteRecordFieldsSql('_value')} AS gf FROM ${rows(deleteLog)})`;
  // What a clean record's plan, apply and example read, as one string (table-specs.ts gcLineSql):
  // unpack's column (CHUNK_SCHEMA 5), else the same computed here from the typed columns.
  const line = o.gcLineColumn ? 'gc_line' : `CASE WHEN ${clean} THEN ${gcLineSql('len(sharks)')} END`;
  const copies = o.gcLineColumn ? 'copies' : 'len(sharks)';
  const deletes = `SELECT lower(coalesce(objectId, split_part(_key, '/', 2))) AS oid, _key, _etag, _mtime,
        shard, ${copies} AS copies, contentLength, ${clean} AS clean, ${line} AS line, filename, file_row_number${
          // The objectId's UUID (oidUuidSql of the grouping key): unpack's column where the row has
          // an objectId (the same expression of the same text, lower-cased or not), else from the key.
          // The cast costs ~250 ns a row (~7 ms for a 1M group's keys); reading the column ~1 ms.
          o.oidUuidColumn
            ? `, CASE WHEN objectId IS NOT NULL THEN oid_uuid ELSE ${oidUuidSql(`split_part(_key, '/', 2)`)} END AS u`
            : ''
        }
      FROM ${from}`;
  // `_value` of the records that are not clean only: decoding every record's (the whole previous
  // record as JSON text) was most of the delete log's read (measured 92 ms against 23 ms for a
  // 28k-record group). With `gc_clean` the reader skips the others by its filter; on older chunks
  // `_value` is read anyway (cleanness is computed from it).
  const values = o.gcCleanColumn
    ? `SELECT filename, file_row_number, _value FROM ${rows(deleteLog)} WHERE gc_clean IS NULL OR NOT gc_clean`
    : `SELECT filename, file_row_number, _value FROM ${from} WHERE NOT (${clean})`;
  const live = liveSql(manta, o);
  // gc.plan.ts classOf, bit by bit (FACT_CLASS_BITS), in doubles as JavaScript compares.
  const bits: Record<keyof FactClass, string> = {
    notProvable: `_mtime::DOUBLE >= ${num(o.earliestSnapshotMs)}`,
    live: 'lkey IS NOT NULL',
    later: '_mtime::DOUBLE < latest::DOUBLE',
    noCopies: 'copies = 0',
    inGrace: `${num(o.now)} - _mtime::DOUBLE <= ${num(o.graceMs)}`,
  };
  const cls = FACT_CLASS_BITS.map((b, i) => `CASE WHEN ${bits[b]} THEN ${1 << i} ELSE 0 END`).join(' + ');
  const verdicts = `[${VERDICT_BY_CLASS.map(sqlString).join(', ')}]`;
  const acting = (Object.keys(CLEANS_UP) as Verdict[])
    .filter((v) => CLEANS_UP[v])
    .map(sqlString)
    .join(', ');
  const order = 'ORDER BY oid, _mtime, _key, shard';
  // An acting record's plan line (gc.actions.ts planLine, PLAN_HEADER): the verdict and its
  // gc_line when eligible; otherwise the line's first six fields, from their columns (no objectId,
  // directory or copies: nothing moves). Cutting the line in SQL (string_split) cost ~30 ms of a 1M
  // group's query, measured.
  const planLineSql = `CASE WHEN v = 'eligible' AND copies > 0 THEN concat_ws(${sqlChr(FS)}, v, line)
      ELSE concat_ws(${sqlChr(FS)}, v, _mtime::VARCHAR, copies::VARCHAR, coalesce(contentLength::VARCHAR, ''),
        shard, _key, _etag, '', '') END`;
  // The first examples of each verdict: one top-N per verdict (a window numbering every record
  // in order cost more than the rest of the query).
  const examples = o.all
    ? 'k'
    : `(${VERDICTS.map((v) => `(SELECT * FROM k WHERE v = ${sqlString(v)} ${order} LIMIT ${DEFAULT_MAX_EXAMPLES})`).join(' UNION ALL ')})`;
  // r is not materialized: copying every record's columns once more cost more than joining twice.
  return `WITH d AS MATERIALIZED (${deletes}),
    dv AS (${values}),
    o AS (SELECT oid, bool_and(clean) AS clean, max(_mtime) AS latest${
      o.oidUuidColumn ? ', any_value(u) AS u' : ''
    } FROM d GROUP BY oid),
    l AS (${live}),
    r AS NOT MATERIALIZED (SELECT d.*, o.clean AS oclean, o.latest, l.key AS lkey, l.shard AS lshard
          FROM d JOIN o USING (oid) LEFT JOIN l USING (oid)),
    k AS MATERIALIZED (SELECT *, ${verdicts}[1 + cls] AS v FROM (SELECT *, ${cls} AS cls FROM r WHERE oclean)),
    -- The examples and the records of other objectIds (p 2).
    x AS (
      SELECT oid, _mtime, _key, shard, concat_ws(${sqlChr(FS)}, cls::VARCHAR,
          CASE WHEN v = 'superseded' THEN latest::VARCHAR ELSE '' END,
          CASE WHEN v = 'live-reference' THEN to_json([lkey, lshard])::VARCHAR ELSE '' END, line) AS line
        FROM ${examples}
      UNION ALL
      SELECT oid, _mtime, _key, shard, CASE WHEN clean
          THEN concat_ws(${sqlChr(FS)}, 'C', ${json('oid')}, ${json('lkey')}, ${json('lshard')}, line)
          ELSE concat_ws(${sqlChr(FS)}, 'R', ${json('oid')}, ${json('_key')}, ${json('_etag')}, coalesce(_mtime::VARCHAR, ''),
            ${json('shard')}, ${json('lkey')}, ${json('lshard')}, ${json('_value')}) END
        FROM r LEFT JOIN dv USING (filename, file_row_number) WHERE NOT oclean)
    SELECT 1 AS p, coalesce(string_agg(${planLineSql}, ${sqlChr(RS)}), '') AS s,
        NULL::VARCHAR AS v, NULL::DOUBLE AS n, NULL::DOUBLE AS copies, NULL::DOUBLE AS bytes, NULL::DOUBLE AS oldest
      FROM k WHERE v IN (${acting})
    UNION ALL
    SELECT 2, coalesce(string_agg(line, ${sqlChr(RS)} ${order}), ''), NULL, NULL, NULL, NULL, NULL FROM x
    UNION ALL
    SELECT 3, NULL, NULL, count(*), NULL, NULL, NULL FROM d
    UNION ALL
    SELECT 4, NULL, v, count(*), sum(copies), sum(copies * coalesce(contentLength, 0)), min(_mtime)
      FROM k GROUP BY v`;
}

/**
 * The live `manta` object rows naming each objectId of `o` (the group's, lower-cased), one row
 * per objectId: `(oid, key, shard)`, the smallest key naming it and that row's shard.
 *
 * With `oid_uuid` (CHUNK_SCHEMA 4): an objectId that is a canonical uuid (`o.u`, the same
 * table-specs.ts oidUuidSql) is found by comparing `oid_uuid`, 16 bytes, with no objectId text read
 * or lower-cased (that was 60–75 ms of a 1M group's ~200 ms query, docs/gc.md). Exact: a live row's
 * `oid_uuid` equals `o.u` exactly when its lower-cased objectId is that text. Any other objectId
 * (`o.u` NULL) can only be named by rows whose `oid_uuid` is NULL, which the text join reads — not at
 * all when every chunk counted none (`liveText` false: ChunkInfo.oidNotUuid).
 */
function liveSql(manta: readonly string[], o: ScanOptions): string {
  if (manta.length === 0)
    return 'SELECT NULL::VARCHAR AS oid, NULL::VARCHAR AS key, NULL::VARCHAR AS shard WHERE false';
  const text = (
    where: string,
    from: string,
  ) => `SELECT lower(objectId) AS oid, min(key) AS key, arg_min(shard, key) AS shard
    FROM ${parquet(manta)} WHERE type = 'object' AND objectId IS NOT NULL${where}
      AND lower(objectId) IN (SELECT oid FROM ${from}) GROUP BY 1`;
  if (!o.oidUuidColumn) return text('', 'o');
  const typed = `SELECT o.oid, lu.key, lu.shard FROM (SELECT oid_uuid AS u, min(key) AS key, arg_min(shard, key) AS shard
      FROM ${parquet(manta)} WHERE type = 'object' AND oid_uuid IN (SELECT u FROM o) GROUP BY 1) lu JOIN o USING (u)`;
  return o.liveText === false
    ? typed
    : `${typed} UNION ALL ${text(' AND oid_uuid IS NULL', 'o WHERE u IS NULL')}`;
}

/** What the group's chunks hold that the scan reads (scanColumnsOf). */
export type ScanColumns = Pick<
  ScanOptions,
  'gcCleanColumn' | 'oidUuidColumn' | 'liveText' | 'gcLineColumn' | 'malformedLive'
>;

/**
 * How the scan reads a group's chunks, from the lowest CHUNK_SCHEMA of the group's sources
 * (PartitionInputs.withGroup: a column added later is absent below it) and its `manta` chunks.
 * Before 3 no `gc_clean` (computed from `_value`); before 4 no `oid_uuid` (every objectId joined as
 * text); before 5 no `gc_line` as the scan reads it (computed). The live join reads objectIds as
 * text too (`liveText`) unless every `manta` chunk counted no objectId that is not a uuid
 * (ChunkInfo.oidNotUuid, absent before CHUNK_SCHEMA 4); the look for live rows whose `_value` is
 * not JSON runs unless every `manta` chunk counted none (ChunkInfo.valueNotJson, absent before 5).
 */
export function scanColumnsOf(
  chunkSchema: number,
  mantaChunks: readonly { oidNotUuid?: number; valueNotJson?: number }[],
): ScanColumns {
  return {
    gcCleanColumn: hasGcCleanColumn({ chunkSchema }),
    oidUuidColumn: hasOidUuidColumn({ chunkSchema }),
    gcLineColumn: hasGcLineColumn({ chunkSchema }),
    liveText: mantaChunks.some((c) => c.oidNotUuid !== 0),
    malformedLive: mantaChunks.some((c) => c.valueNotJson !== 0),
  };
}

/** `manta` rows of the group whose `_value` is not JSON: they may name any objectId. */
function malformedLiveSql(manta: readonly string[]): string {
  return `SELECT _key, shard FROM ${parquet(manta)} WHERE NOT value_ok LIMIT 5`;
}

/** Clean records of one verdict (queryGroup `counted`): count, copies, bytes, oldest `_mtime`. */
export interface CountedRecords {
  verdict: Exclude<Verdict, 'malformed'>;
  n: number;
  copies: number;
  bytes: number;
  oldest: number;
}

/** What DuckDB answers for a group (decideGroup reads it). */
export interface GroupRows {
  /** Examples of clean records and every record of other objectIds, as one string (scanSql `rows`). */
  text: string;
  /** The clean records that act, as one string (scanSql `acts`). */
  acts: string;
  /** Every clean record, counted per verdict. */
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
  if (files.deleteLog.length === 0)
    return { text: '', acts: '', counted: [], deleteRecords: 0, malformedLive: [] };
  let text = '';
  let acts = '';
  let n = 0;
  const counted: CountedRecords[] = [];
  for (const row of (await conn.runAndReadAll(scanSql(files.manta, files.deleteLog, o))).getRows()) {
    const [p, str, v, count, copies, bytes, oldest] = row as [
      number,
      string | null,
      string | null,
      ...(number | null)[],
    ];
    if (p === 1) acts = str ?? '';
    else if (p === 2) text = str ?? '';
    else if (p === 3) n = Number(count);
    else
      counted.push({
        verdict: v as CountedRecords['verdict'],
        n: Number(count),
        copies: copies ?? 0,
        bytes: bytes ?? 0,
        oldest: oldest!,
      });
  }
  const malformedLive =
    files.manta.length === 0 || o.malformedLive === false
      ? []
      : (await conn.runAndReadAll(malformedLiveSql(files.manta)))
          .getRows()
          .map(([k, s]) => ({ key: String(k), shard: String(s) }));
  return {
    text,
    acts,
    counted,
    deleteRecords: n,
    malformedLive,
  };
}

/**
 * A group's decisions, counted: per verdict the count and the first examples, the backlog, and
 * the records that act (cleanup, with or without copies to move), as columns (GcActions).
 */
export class DecisionTally {
  /** The records that remove their delete record (and move copies, for `eligible`). */
  readonly actions = new GcActions();
  readonly verdicts = new Map<Verdict, { n: number; examples: RecordDecision[] }>();
  readonly backlog: GcBacklog = emptyBacklog();
  decided = 0;
  /** Every decision, when asked for (tests). */
  readonly all: RecordDecision[] | undefined;

  constructor(opts: { all?: boolean } = {}) {
    this.all = opts.all ? [] : undefined;
  }

  /** A decision made in Node: counted, an example if among the first, in the backlog, and an action if it acts. */
  add(d: RecordDecision): void {
    this.verdict(d.verdict);
    addToBacklog(this.backlog, d.verdict, d.record.mtime, d.copies, d.contentLength);
    if (d.cleanup) this.actions.addDecision(d);
    this.example(d);
  }

  /** A decision DuckDB counted (countMany) and acted on (acts), sent whole as an example (or for `all`). */
  example(d: RecordDecision): void {
    const v = this.verdict(d.verdict, 0);
    if (v.examples.length < DEFAULT_MAX_EXAMPLES) v.examples.push(d);
    this.all?.push(d);
  }

  /** Clean records counted by DuckDB: the same counts and backlog as add() of each. */
  countMany(c: CountedRecords): void {
    this.verdict(c.verdict, c.n);
    addRecordsToBacklog(this.backlog, c.verdict, {
      records: c.n,
      copies: c.copies,
      bytes: c.bytes,
      oldestMs: c.oldest,
    });
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

/**
 * A clean record of an objectId that has records that are not (scanSql `C`): JSON `oid liveKey
 * liveShard`, then its gc_line. Its `_value` as the fields decideObject reads of it, which hold what
 * JSON.parse of its `_value` gives (table-specs.ts deleteRecordCleanSql): the objectId, the copies
 * and contentLength, and the copies' directory as the owner (the creator when one is named: the
 * directory is all the decision reads of either).
 */
function decodeCleanOfOther(f: string[]): {
  oid: string;
  record: DeleteRecord;
  liveKey: Str;
  liveShard: Str;
} {
  const j = (x: string | undefined) => JSON.parse(x!) as Str;
  const mtime = Number(f[4]);
  return {
    oid: j(f[1]) ?? '',
    liveKey: j(f[2]),
    liveShard: j(f[3]),
    record: {
      key: f[8]!,
      etag: f[9]!,
      mtime,
      shard: f[7]!,
      value: {
        objectId: f[10],
        owner: f[11],
        sharks: copiesOfFields(f, 12).map((c) =>
          c.datacenter !== undefined
            ? { manta_storage_id: c.node, datacenter: c.datacenter }
            : { manta_storage_id: c.node },
        ),
        ...(f[6] === '' ? {} : { contentLength: Number(f[6]) }),
      },
    },
  };
}

/**
 * Decide every delete record of queryGroup's answer into `tally`: the clean records that act
 * from `acts` (their verdict is VERDICT_BY_CLASS of their class), the examples among clean
 * records as decisions, any other objectId's records by decideObject on its rows as written;
 * then the clean records' counts.
 */
export function decideGroup(rows: GroupRows, o: GcOptions, tally = new DecisionTally()): DecisionTally {
  let raw: (GcInput & { live: LiveRef[]; deletes: DeleteRecord[] }) | undefined;
  const flush = () => {
    if (raw) for (const d of decideObject(raw, o)) tally.add(d);
    raw = undefined;
  };
  for (const line of rows.text === '' ? [] : rows.text.split(RS)) {
    const f = line.split(FS);
    if (f[0] === 'R' || f[0] === 'C') {
      const { oid, record, liveKey, liveShard } = f[0] === 'R' ? decodeRaw(f) : decodeCleanOfOther(f);
      if (!raw || raw.objectId !== oid) {
        flush();
        raw = { objectId: oid, live: [], deletes: [] };
        if (liveKey !== null) raw.live.push({ key: liveKey, shard: liveShard ?? '' });
      }
      raw.deletes.push(record);
      continue;
    }
    flush();
    tally.example(wholeRecord(f));
  }
  flush();
  tally.actions.addLines(rows.acts);
  for (const c of rows.counted) tally.countMany(c);
  return tally;
}

/** A clean record sent whole (scanSql: `class latest live` and its gc_line), as its decision. */
function wholeRecord(f: string[]): RecordDecision {
  const verdict = VERDICT_BY_CLASS[Number(f[0])]!;
  const mtime = Number(f[3]);
  const contentLength = f[5] === '' ? undefined : Number(f[5]);
  let live: LiveRef | undefined;
  if (f[2] !== '') {
    const [key, shard] = JSON.parse(f[2]!) as [string, string];
    live = { key, shard };
  }
  // latestMtime is only read (detailOf) when a later record made this one superseded.
  const facts: RecordFacts = {
    mtime,
    latestMtime: f[1] === '' ? mtime : Number(f[1]),
    live,
    copies: Number(f[4]),
  };
  const record = { shard: f[6]!, key: f[7]!, etag: f[8]!, mtime };
  return decisionOf(record, verdict, facts, contentLength, () => copiesOfFields(f, 11), f[10]!, f[9]!);
}

/** queryGroup then decideGroup, on one connection (every record sent when `tally` keeps them all). */
export async function scanGroup(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; deleteLog: readonly string[] },
  o: GcOptions & ScanColumns,
  tally?: DecisionTally,
): Promise<{ rows: GroupRows; tally: DecisionTally }> {
  const rows = await queryGroup(conn, files, { ...o, all: tally?.all !== undefined });
  return { rows, tally: decideGroup(rows, o, tally) };
}
