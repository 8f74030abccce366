/**
 * The usage table `remora pipeline run` ends with: the day's storage metering, per account and
 * namespace. Every table reads Remora's own files: under `pipeline.outputPrefix` when set.
 */
import { publishedPath } from '../core/published-path.js';
import { readObjectText } from '../objectstore/object-store.js';
import { listAccounts } from '../frontdoor/accounts.js';
import { operatorReportPath } from '../jobs/storage-metering/storage-metering.rules.js';
import {
  BILLABLE_OPERATIONS,
  operatorReportPath as requestReportPath,
} from '../jobs/request-metering/request-metering.rules.js';
import type { PipelineRuntime } from '../pipeline/runtime.js';
import { formatTable } from '../core/table.js';
import { operatorSummaryPath } from '../jobs/usage-summary/usage-summary.rules.js';

export async function printUsageTable(rt: PipelineRuntime, day: string): Promise<void> {
  const { store, tier } = rt.services;
  const path = publishedPath(rt.settings.outputPrefix, operatorReportPath(day));
  if (!(await store.head(path))) return;
  const text = await readObjectText(store, path);
  const logins = new Map((await listAccounts(tier)).map((a) => [a.uuid, a.login]));
  const rows: Record<string, string>[] = [];
  for (const line of text.split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as { owner: string; storage: Record<string, Record<string, string>> };
    for (const [ns, u] of Object.entries(r.storage)) {
      if (Object.values(u).every((v) => v === '0')) continue;
      rows.push({ account: logins.get(r.owner) ?? r.owner, namespace: ns, ...u });
    }
  }
  process.stdout.write(`\nstorage usage ${day} (${path})\n`);
  process.stdout.write(
    formatTable(rows, ['account', 'namespace', 'directories', 'keys', 'objects', 'bytes']),
  );
}

/**
 * A per-account table of one operator file (JSON lines with `owner`), accounts by login;
 * nothing when the file does not exist.
 */
async function printAccountTable<R extends { owner: string }>(
  rt: PipelineRuntime,
  original: string,
  title: string,
  columns: string[],
  row: (r: R) => Record<string, string>,
): Promise<void> {
  const { store, tier } = rt.services;
  const path = publishedPath(rt.settings.outputPrefix, original);
  if (!(await store.head(path))) return;
  const logins = new Map((await listAccounts(tier)).map((a) => [a.uuid, a.login]));
  const rows = (await readObjectText(store, path))
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const r = JSON.parse(line) as R;
      return { account: logins.get(r.owner) ?? r.owner, ...row(r) };
    });
  process.stdout.write(`\n${title} (${path})\n`);
  process.stdout.write(formatTable(rows, ['account', ...columns]));
}

/** The hour's request metering, per account: requests by billable operation, bandwidth. */
export function printRequestTable(rt: PipelineRuntime, hour: string): Promise<void> {
  return printAccountTable<{
    owner: string;
    requests: { type: Record<string, string>; bandwidth: Record<string, string> };
  }>(
    rt,
    requestReportPath(hour),
    `requests ${hour}`,
    [...BILLABLE_OPERATIONS, 'bytes in', 'bytes out'],
    (r) => ({
      ...r.requests.type,
      'bytes in': r.requests.bandwidth.in ?? '0',
      'bytes out': r.requests.bandwidth.out ?? '0',
    }),
  );
}

/**
 * The day's summary (usage-summary), per account: storage GB-hours, requests by kind,
 * bandwidth in/out, compute GB-seconds — the summary file's numbers, as they are.
 */
export function printSummaryTable(rt: PipelineRuntime, day: string): Promise<void> {
  return printAccountTable<{
    owner: string;
    storageGBHours: string;
    requests: Record<string, string>;
    bandwidthBytes: { in: string; out: string };
    computeGBSeconds: string;
  }>(
    rt,
    operatorSummaryPath(day),
    `usage summary ${day}`,
    ['storage GB-h', ...BILLABLE_OPERATIONS, 'bytes in', 'bytes out', 'compute GB-s'],
    (r) => ({
      'storage GB-h': r.storageGBHours,
      ...r.requests,
      'bytes in': r.bandwidthBytes.in,
      'bytes out': r.bandwidthBytes.out,
      'compute GB-s': r.computeGBSeconds,
    }),
  );
}
