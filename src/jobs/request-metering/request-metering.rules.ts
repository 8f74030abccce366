/**
 * Request metering rules (MANTA-REFERENCE §3.6 "Request"; mackerel request-map.js, sum-columns,
 * deliver-usage.js). An audit line counts when:
 *
 *   - it is an audit record (`audit: true`);
 *   - `req.url` is not `/ping`;
 *   - it has `req.owner` — and the request is charged to that OWNER of the object, not the caller;
 *   - the caller is not the operator (`poseidon`: DROP_POSEIDON_REQUESTS);
 *   - `res.statusCode` is 200–204 (MANTA-1772: only successful requests).
 *
 * For a counted line: `requests.type[billable_operation]` += 1 over DELETE GET HEAD LIST OPTIONS
 * POST PUT; `headerIn` += reqHeaderLength, `headerOut` += resHeaderLength; `out` += contentLength
 * for `req.method` GET, `in` += contentLength for PUT, where contentLength is the response's
 * content-length, else the request's, else `bytesTransferred`.
 *
 * Fixed defect of the original: it tested the misspelled `record.bytesTranferred`, so a
 * streamed (chunked) upload, which has no content-length, counted 0 bytes in. Here
 * `bytesTransferred` is read.
 *
 * Decisions where the original was silent or accidental (docs/metering.md):
 *   - a content-length that is absent, 0 or not a decimal number counts as absent (the
 *     original's JavaScript truthiness, without parseInt's "12abc" → 12);
 *   - a `billable_operation` outside the seven is not counted in `type` (the original made a
 *     NaN key of it) but its bytes are, with an `unknown-operation` warning; a line without one
 *     (muskie before 2013) counts bytes only, as the original did;
 *   - a missing reqHeaderLength / resHeaderLength counts 0 (the original threw);
 *   - counts are decimal strings in both files (deliver-usage turned every number into one);
 *   - a 206 (a Range GET) is outside 200–204 and is not counted — as in the original.
 */

/** The billable operations, in the order of the original's record. */
export const BILLABLE_OPERATIONS = ['DELETE', 'GET', 'HEAD', 'LIST', 'OPTIONS', 'POST', 'PUT'] as const;
export type BillableOperation = (typeof BILLABLE_OPERATIONS)[number];

/** The operator's login: its calls are not metered (DROP_POSEIDON_REQUESTS / ADMIN_USER). */
export const OPERATOR_CALLER = 'poseidon';

/** Statuses that count (MANTA-1772). */
export const OK_STATUS_MIN = 200;
export const OK_STATUS_MAX = 204;

export interface RequestUsage {
  type: Record<BillableOperation, bigint>;
  in: bigint;
  out: bigint;
  headerIn: bigint;
  headerOut: bigint;
}

export function zeroRequestUsage(): RequestUsage {
  return {
    type: { DELETE: 0n, GET: 0n, HEAD: 0n, LIST: 0n, OPTIONS: 0n, POST: 0n, PUT: 0n },
    in: 0n,
    out: 0n,
    headerIn: 0n,
    headerOut: 0n,
  };
}

export interface RequestRecord {
  type: Record<BillableOperation, string>;
  bandwidth: { in: string; out: string; headerIn: string; headerOut: string };
}

/** `{"type":{…},"bandwidth":{"in","out","headerIn","headerOut"}}`, every number a decimal string. */
export function requestRecord(u: RequestUsage): RequestRecord {
  const type = {} as Record<BillableOperation, string>;
  for (const op of BILLABLE_OPERATIONS) type[op] = u.type[op].toString();
  return {
    type,
    bandwidth: {
      in: u.in.toString(),
      out: u.out.toString(),
      headerIn: u.headerIn.toString(),
      headerOut: u.headerOut.toString(),
    },
  };
}

/** The operator file's line: `{"owner":…,"requests":{…}}` (request-reduce → deliver-usage). */
export function operatorLine(owner: string, u: RequestUsage): string {
  return JSON.stringify({ owner, requests: requestRecord(u) });
}

/**
 * The account's copy: no `owner`, plus `date` (the hour). deliver-usage meant to drop the header
 * bytes with `if (record.bandwidth)`, but they are nested under `requests`, so accounts always
 * received `headerIn`/`headerOut` — and still do (MANTA-REFERENCE §3.6; mackerel docs/reports.md).
 */
export function accountRecord(u: RequestUsage, hourIso: string): { requests: RequestRecord; date: string } {
  return { requests: requestRecord(u), date: hourIso };
}

/** `2024-03-01T05` → `2024/03/01/05`. */
export function hourDir(hourKey: string): string {
  return `${hourKey.slice(0, 10).replaceAll('-', '/')}/${hourKey.slice(11, 13)}`;
}

/** `2024-03-01T05` → `2024-03-01T05:00:00.000Z` (the `date` of the account's report). */
export function hourIso(hourKey: string): string {
  return `${hourKey}:00:00.000Z`;
}

export function operatorReportPath(hourKey: string): string {
  return `/poseidon/stor/usage/request/${hourDir(hourKey)}/h${hourKey.slice(11, 13)}.json`;
}

export function userReportDir(login: string): string {
  return `/${login}/reports/usage/request`;
}

export function userReportPath(login: string, hourKey: string): string {
  return `${userReportDir(login)}/${hourDir(hourKey)}/h${hourKey.slice(11, 13)}.json`;
}

/**
 * MALFORMED_LIMIT: malformed lines tolerated per log object before the run is `invalid`: a
 * count (`"10"`, the original job's setting) or a share of the object's lines (`"1%"`; the
 * original multiplied by the percentage without dividing by 100 — fixed here).
 */
export function malformedLimit(setting: string | number, lines: number): number {
  const s = String(setting).trim();
  if (s.endsWith('%')) return (Number(s.slice(0, -1)) / 100) * lines;
  return Number(s);
}

export function validMalformedLimit(setting: string | number): boolean {
  const s = String(setting).trim();
  const n = Number(s.endsWith('%') ? s.slice(0, -1) : s);
  return s !== '' && s !== '%' && Number.isFinite(n) && n >= 0;
}

/** The original job's MALFORMED_LIMIT (mackerel etc/jobs.json "request"). */
export const DEFAULT_MALFORMED_LIMIT = '10';
