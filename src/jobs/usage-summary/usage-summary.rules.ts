/**
 * The daily summary's rules (MANTA-REFERENCE §3.6 "Daily summary"; mackerel summarize-map.js,
 * summarize-reduce.js): from one day's storage report and its 24 request and 24 compute hours,
 * per owner
 *
 *   storageGBHours         ceil(Σ bytes over namespaces × 24 / 2^30)   (one storage report a day, MANTA-2430)
 *   bandwidthBytes         {in, out} of the request reports (header bytes are not in it)
 *   requests               requests by billable operation
 *   computeGBSeconds       Σ per phase and hour: seconds × (billing tier memory / 1024)
 *   computeBandwidthBytes  {in, out} of the compute reports
 *
 * Every number is a decimal string (deliver-usage.js stringified the accounts' copies; the
 * operator file uses the same shape, as the other metering files here do).
 */
import { BILLABLE_OPERATIONS, type BillableOperation } from '../request-metering/request-metering.rules.js';
import { datePath } from '../storage-metering/storage-metering.rules.js';

/** mackerel's billingComputeTable: disk GiB, memory MiB; the first row that covers the phase bills it. */
export const BILLING_COMPUTE_TABLE: readonly { disk: number; memory: number }[] = [
  { disk: 32, memory: 1024 },
  { disk: 64, memory: 2048 },
  { disk: 128, memory: 4096 },
  { disk: 256, memory: 8192 },
  { disk: 512, memory: 16384 },
  { disk: 1024, memory: 32768 },
];

const GIB = 1n << 30n;

/**
 * The tier of a phase: the first row with `disk ≥ usage.disk` and `memory ≥ usage.memory`. An
 * unknown memory or disk (the compute report omits it when no record carried it) counts as 0 —
 * the original compared with `undefined` and found no tier at all. A phase beyond the largest
 * row is billed at the largest (`beyond` says so, for an event).
 */
export function billingTier(memory: number | undefined, disk: number | undefined) {
  const m = memory ?? 0;
  const d = disk ?? 0;
  const row = BILLING_COMPUTE_TABLE.find((r) => r.disk >= d && r.memory >= m);
  return row
    ? { memory: row.memory, beyond: false }
    : { memory: BILLING_COMPUTE_TABLE.at(-1)!.memory, beyond: true };
}

/** GB-seconds of one phase in one hour: seconds × tier memory / 1024 (every tier is whole GiB). */
export function phaseGBSeconds(seconds: bigint, tierMemory: number): bigint {
  return (seconds * BigInt(tierMemory)) / 1024n;
}

/** `ceil(bytes × 24 / 2^30)`: a day of one storage measurement, in GB-hours. */
export function storageGBHours(bytes: bigint): bigint {
  return (bytes * 24n + GIB - 1n) / GIB;
}

export interface DaySums {
  storageBytes: bigint;
  in: bigint;
  out: bigint;
  requests: Record<BillableOperation, bigint>;
  computeGBSeconds: bigint;
  computeIn: bigint;
  computeOut: bigint;
}

export function zeroSums(): DaySums {
  return {
    storageBytes: 0n,
    in: 0n,
    out: 0n,
    requests: { DELETE: 0n, GET: 0n, HEAD: 0n, LIST: 0n, OPTIONS: 0n, POST: 0n, PUT: 0n },
    computeGBSeconds: 0n,
    computeIn: 0n,
    computeOut: 0n,
  };
}

export interface SummaryRecord {
  storageGBHours: string;
  bandwidthBytes: { in: string; out: string };
  requests: Record<BillableOperation, string>;
  computeGBSeconds: string;
  computeBandwidthBytes: { in: string; out: string };
  date: string;
  /** Only when inputs were missing past the deadline: which (`request-metering 2024-03-01T05`). */
  missing?: string[];
}

/** The columns of a day's usage table (operator text summary, `remora usage show`, the page). */
export const USAGE_TABLE_COLUMNS = [
  'account',
  'storage GB-h',
  ...BILLABLE_OPERATIONS,
  'bytes in',
  'bytes out',
  'compute GB-s',
  'compute in',
  'compute out',
];

/** One account's row of that table, under USAGE_TABLE_COLUMNS' names. */
export function usageTableRow(
  account: string,
  r: Omit<SummaryRecord, 'date' | 'missing'>,
): Record<string, string> {
  return {
    account,
    'storage GB-h': r.storageGBHours,
    ...r.requests,
    'bytes in': r.bandwidthBytes.in,
    'bytes out': r.bandwidthBytes.out,
    'compute GB-s': r.computeGBSeconds,
    'compute in': r.computeBandwidthBytes.in,
    'compute out': r.computeBandwidthBytes.out,
  };
}

/** `2024-03-01` → `2024-03-01T00:00:00.000Z`, the records' `date`. */
export function summaryDate(day: string): string {
  return `${day}T00:00:00.000Z`;
}

export function summaryRecord(s: DaySums, day: string, missing: string[]): SummaryRecord {
  const requests = {} as Record<BillableOperation, string>;
  for (const op of BILLABLE_OPERATIONS) requests[op] = s.requests[op].toString();
  return {
    storageGBHours: storageGBHours(s.storageBytes).toString(),
    bandwidthBytes: { in: s.in.toString(), out: s.out.toString() },
    requests,
    computeGBSeconds: s.computeGBSeconds.toString(),
    computeBandwidthBytes: { in: s.computeIn.toString(), out: s.computeOut.toString() },
    date: summaryDate(day),
    ...(missing.length > 0 ? { missing } : {}),
  };
}

export const SUMMARY_ROOT = '/poseidon/stor/usage/summary';
/** The operator's plain-text summary of the latest day (the original's daily-summary.txt). */
export const DAILY_TEXT_LATEST = '/poseidon/stor/usage/daily-summary.txt';

/** `/poseidon/stor/usage/summary/YYYY/MM/DD/dDD.json` */
export function operatorSummaryPath(day: string): string {
  return `${SUMMARY_ROOT}/${datePath(day)}/d${day.slice(8, 10)}.json`;
}

/** The plain-text table of the day, beside the JSON file. */
export function operatorTextPath(day: string): string {
  return `${SUMMARY_ROOT}/${datePath(day)}/d${day.slice(8, 10)}.txt`;
}

export function userSummaryDir(login: string): string {
  return `/${login}/reports/usage/summary`;
}

export function userSummaryPath(login: string, day: string): string {
  return `${userSummaryDir(login)}/${datePath(day)}/d${day.slice(8, 10)}.json`;
}
