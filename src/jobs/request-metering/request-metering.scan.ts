/**
 * Reading an hour of muskie audit logs for request metering: one DuckDB query over every log
 * object of the hour (`read_json`, only the fields the rules use, every leaf read as text so a
 * field of an unexpected type never drops a line) grouped by log object, class and owner. Node
 * counts the JSON lines of an object at the byte level when DuckDB gave it rows of NULLs. A
 * JSON line DuckDB could not read is the difference between the two counts, so malformed lines
 * are counted exactly without parsing every line in JavaScript; examples are looked for only in
 * an object that has some. An object without rows of NULLs has no other lines and one JSON line
 * per row (DuckDB skips blank lines, as the count does), so it is not read a second time.
 *
 *   JSON line   a line whose first character other than space, tab or CR is `{` (the original
 *               skipped lines not starting with `{`: bunyan's `[ Nov 28 … Enabled. ]` lines);
 *               blank lines are neither JSON nor other lines
 *   malformed   a JSON line that is not a JSON object (invalid, truncated by a rotation), or
 *               an object with none of a log record's top-level fields (MARKERS). DuckDB gives
 *               such a line, and a non-JSON line, a row of NULLs: malformed = those rows −
 *               the other lines Node counted. A nested field of the wrong shape (`req` or
 *               `req.headers` a string) reads as absent, like a missing one.
 *
 * Classes, in the order they are decided (request-metering.rules.ts): notAudit, ping, noOwner,
 * operator, failed (status outside 200–204), billable; and malformed.
 */
import fs from 'node:fs';
import { createInterface } from 'node:readline';
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString, type DuckPool } from '../../dumps/duckdb.js';
import {
  BILLABLE_OPERATIONS,
  OK_STATUS_MAX,
  OK_STATUS_MIN,
  OPERATOR_CALLER,
  zeroRequestUsage,
  type RequestUsage,
} from './request-metering.rules.js';

export const LINE_CLASSES = [
  'notAudit',
  'malformed',
  'ping',
  'noOwner',
  'operator',
  'failed',
  'billable',
] as const;
export type LineClass = (typeof LINE_CLASSES)[number];

/** A log record has at least one of these top-level fields (bunyan's, or the audit line's own). */
export const MARKERS = [
  'audit',
  'billable_operation',
  'reqHeaderLength',
  'resHeaderLength',
  'bytesTransferred',
  'name',
  'level',
  'msg',
  'time',
  'v',
] as const;

export interface FileScan {
  /** JSON lines (first non-blank character `{`). */
  jsonLines: number;
  /** Other lines (bunyan's non-JSON lines, blank lines). */
  otherLines: number;
  /** JSON lines by class. */
  classes: Record<LineClass, number>;
  /** Up to EXAMPLES malformed lines: line number and its first characters. */
  examples: { line: number; text: string }[];
}

export interface HourScan {
  files: FileScan[];
  usage: Map<string, RequestUsage>;
  /** Billable lines with a billable_operation outside the seven, and examples of them. */
  unknownOperations: number;
  unknownOperationExamples: string[];
  /** Billable lines without billable_operation (counted for bytes only). */
  noOperation: number;
}

const EXAMPLES = 5;
const EXAMPLE_CHARS = 300;
const OPS = BILLABLE_OPERATIONS.map(sqlString).join(', ');

/**
 * A positive integer from a text field, else NULL: digits only (TRY_CAST alone would read " 12",
 * "1e3", "0x10" and 12.7 as numbers; the rules say a content-length that is not a decimal number
 * counts as absent).
 */
function positive(expr: string): string {
  return `CASE WHEN regexp_full_match(${expr}, '[0-9]+') AND TRY_CAST(${expr} AS BIGINT) > 0
    THEN TRY_CAST(${expr} AS BIGINT) END`;
}

function query(files: string[]): string {
  const from = `read_json([${files.map(sqlString).join(', ')}], format = 'newline_delimited',
      ignore_errors = true, filename = true,
      columns = {${MARKERS.map((m) => `"${m}": 'VARCHAR'`).join(', ')},
        req: 'STRUCT(method VARCHAR, url VARCHAR, owner VARCHAR, headers STRUCT("content-length" VARCHAR), caller STRUCT(login VARCHAR))',
        res: 'STRUCT("statusCode" VARCHAR, headers STRUCT("content-length" VARCHAR))'})`;
  return `
    WITH c AS (
      SELECT filename AS f,
        CASE WHEN coalesce(${MARKERS.map((m) => `"${m}"`).join(', ')}) IS NULL THEN 'empty'
          WHEN audit IS DISTINCT FROM 'true' THEN 'notAudit'
          WHEN req.url = '/ping' THEN 'ping'
          WHEN req.owner IS NULL THEN 'noOwner'
          WHEN req.caller.login = ${sqlString(OPERATOR_CALLER)} THEN 'operator'
          WHEN coalesce(TRY_CAST(res."statusCode" AS INTEGER) BETWEEN ${OK_STATUS_MIN} AND ${OK_STATUS_MAX}, false) = false
            THEN 'failed'
          ELSE 'billable' END AS cls,
        req.owner AS owner, billable_operation AS op, req.method AS method,
        coalesce(TRY_CAST(reqHeaderLength AS BIGINT), 0) AS hin,
        coalesce(TRY_CAST(resHeaderLength AS BIGINT), 0) AS hout,
        -- The response's content-length, else the request's, else bytesTransferred (the
        -- original's misspelled bytesTranferred, fixed).
        coalesce(${positive('res.headers."content-length"')}, ${positive('req.headers."content-length"')},
          ${positive('bytesTransferred')}, 0) AS len
      FROM ${from}
    )
    SELECT f, cls, CASE WHEN cls = 'billable' THEN owner END AS owner, count(*) AS n,
      ${BILLABLE_OPERATIONS.map((op) => `count(*) FILTER (WHERE op = ${sqlString(op)}) AS "${op}"`).join(',\n      ')},
      count(*) FILTER (WHERE op IS NOT NULL AND op NOT IN (${OPS})) AS unknown_op,
      count(*) FILTER (WHERE op IS NULL) AS no_op,
      coalesce(sum(len::HUGEINT) FILTER (WHERE method = 'PUT'), 0) AS bw_in,
      coalesce(sum(len::HUGEINT) FILTER (WHERE method = 'GET'), 0) AS bw_out,
      coalesce(sum(hin::HUGEINT), 0) AS header_in,
      coalesce(sum(hout::HUGEINT), 0) AS header_out
    FROM c GROUP BY ALL`;
}

function unknownOpsQuery(files: string[]): string {
  return `SELECT DISTINCT billable_operation AS op FROM read_json([${files.map(sqlString).join(', ')}],
      format = 'newline_delimited', ignore_errors = true,
      columns = {audit: 'VARCHAR', billable_operation: 'VARCHAR'})
    WHERE audit = 'true' AND billable_operation NOT IN (${OPS}) ORDER BY 1 LIMIT ${EXAMPLES}`;
}

type Row = [string, LineClass | 'empty', string | null, bigint, ...bigint[]];

/** Scan an hour's local log files (in the order given). */
export async function scanHour(duck: DuckPool, files: string[], queued?: () => void): Promise<HourScan> {
  const out: HourScan = {
    files: [],
    usage: new Map(),
    unknownOperations: 0,
    unknownOperationExamples: [],
    noOperation: 0,
  };
  if (files.length === 0) return out;
  const rows = await duck.run((conn) => runQuery(conn, files, out), queued);
  const byFile = new Map(files.map((f, i) => [f, i]));
  out.files = files.map(() => ({ jsonLines: 0, otherLines: 0, classes: emptyClasses(), examples: [] }));
  const empty = new Map<string, number>();
  for (const [f, cls, owner, n, ...v] of rows) {
    const fs_ = out.files[byFile.get(f) ?? -1];
    if (!fs_) continue;
    if (cls === 'empty') {
      empty.set(f, (empty.get(f) ?? 0) + Number(n));
      continue;
    }
    fs_.classes[cls] += Number(n);
    // DuckDB gives every line that is not blank one row: without rows of NULLs, every line is
    // a JSON line with a record (counted from the bytes below otherwise).
    fs_.jsonLines += Number(n);
    if (cls !== 'billable' || owner === null) continue;
    const u = out.usage.get(owner) ?? zeroRequestUsage();
    BILLABLE_OPERATIONS.forEach((op, i) => (u.type[op] += v[i]!));
    const k = BILLABLE_OPERATIONS.length;
    out.unknownOperations += Number(v[k]);
    out.noOperation += Number(v[k + 1]);
    u.in += v[k + 2]!;
    u.out += v[k + 3]!;
    u.headerIn += v[k + 4]!;
    u.headerOut += v[k + 5]!;
    out.usage.set(owner, u);
  }
  for (const [i, f] of out.files.entries()) {
    const nulls = empty.get(files[i]!) ?? 0;
    if (nulls === 0) continue;
    // Rows of NULLs are the malformed JSON lines and the other (non-JSON) lines: only Node's
    // byte-level count tells them apart.
    Object.assign(f, await countJsonLines(files[i]!));
    f.classes.malformed = Math.max(0, nulls - f.otherLines);
    if (f.classes.malformed > 0) f.examples = await malformedExamples(files[i]!, f.classes.malformed);
  }
  return out;
}

async function runQuery(conn: DuckDBConnection, files: string[], out: HourScan): Promise<Row[]> {
  const rows = (await conn.runAndReadAll(query(files))).getRows() as unknown as Row[];
  if (rows.some((r) => r[1] === 'billable' && BigInt(r[3 + 1 + BILLABLE_OPERATIONS.length] ?? 0n) > 0n)) {
    const ex = (await conn.runAndReadAll(unknownOpsQuery(files))).getRows();
    out.unknownOperationExamples = ex.map((r) => String(r[0]));
  }
  return rows;
}

function emptyClasses(): Record<LineClass, number> {
  return Object.fromEntries(LINE_CLASSES.map((c) => [c, 0])) as Record<LineClass, number>;
}

const READ_CHUNK = 1 << 20;
const NL = 0x0a;
const BRACE = 0x7b;

function blank(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d;
}

/** Count JSON lines and other lines of a file, reading bytes only. */
export async function countJsonLines(file: string): Promise<{ jsonLines: number; otherLines: number }> {
  const fh = await fs.promises.open(file, 'r');
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  let jsonLines = 0;
  let otherLines = 0;
  // atStart: inside a line's leading blanks (a blank line is counted as nothing).
  let atStart = true;
  let isJson = false;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, null);
      if (bytesRead === 0) break;
      let i = 0;
      while (i < bytesRead) {
        if (atStart) {
          const b = buf[i]!;
          if (b === NL || blank(b)) {
            i++;
            continue;
          }
          atStart = false;
          isJson = b === BRACE;
        }
        const nl = buf.indexOf(NL, i);
        if (nl === -1 || nl >= bytesRead) {
          i = bytesRead;
          break;
        }
        if (isJson) jsonLines++;
        else otherLines++;
        atStart = true;
        i = nl + 1;
      }
    }
  } finally {
    await fh.close();
  }
  if (!atStart) {
    if (isJson) jsonLines++;
    else otherLines++;
  }
  return { jsonLines, otherLines };
}

/** A JSON line the query could not use (the definition in the header), decided in JavaScript. */
export function isMalformedLine(line: string): boolean {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return true;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return true;
  const rec = v as Record<string, unknown>;
  // A `req` or `res` that is not an object reads as absent (DuckDB gives a struct of NULLs), like
  // a missing one: such a line is a log record (noOwner, failed…), not malformed.
  return MARKERS.every((m) => rec[m] === undefined || rec[m] === null);
}

/** The first EXAMPLES malformed lines of a file (stops once `expected` are found). */
async function malformedExamples(file: string, expected: number): Promise<{ line: number; text: string }[]> {
  const out: { line: number; text: string }[] = [];
  let n = 0;
  let found = 0;
  const rl = createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) {
    n++;
    if (!/^[ \t\r]*\{/.test(line) || !isMalformedLine(line)) continue;
    found++;
    if (out.length < EXAMPLES) out.push({ line: n, text: line.slice(0, EXAMPLE_CHARS) });
    if (out.length >= EXAMPLES || found >= expected) break;
  }
  rl.close();
  return out;
}
