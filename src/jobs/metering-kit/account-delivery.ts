/**
 * Delivering per-account reports (mackerel deliver-usage.js / deliver-access.js): the report at
 * its dated path and a copy at `latest` (the original snaplinked `latest` to it), for accounts
 * with `reports: true` only (DELIVER_UNAPPROVED_REPORTS=false; everyone is still counted in the
 * operator's file), and the removal of an account's reports older than the retention window
 * (RFD 16 problem 7). Generic over the report kind: request metering and access logs use it.
 */
import { eachLimit } from '../../core/concurrency.js';
import type { ReportBuilder } from '../../core/run-report.js';
import type { ObjectStore } from '../../objectstore/object-store.js';
import type { PipelineServices } from '../../pipeline/job.js';

export interface AccountRecord {
  uuid: string;
  login: string;
  reports?: boolean;
}

/** Every account, by uuid (the `accounts` bucket on the storage shard). */
export async function accountsByUuid(services: PipelineServices): Promise<Map<string, AccountRecord>> {
  const r = await services.tier.storageShard.pool.query<{ _value: string }>('SELECT _value FROM accounts');
  return new Map(r.rows.map((x) => JSON.parse(x._value) as AccountRecord).map((a) => [a.uuid, a]));
}

/**
 * Which owners get a report: those with an account that has `reports: true`. An owner with no
 * account is an `unknown-owner` warning (the original's "No login found for UUID"); an account
 * that opted out is counted `notDelivered`.
 */
export function deliverable(
  owners: Iterable<string>,
  accounts: Map<string, AccountRecord>,
  report: ReportBuilder,
): { owner: string; login: string }[] {
  const out: { owner: string; login: string }[] = [];
  for (const owner of owners) {
    const a = accounts.get(owner);
    if (!a) report.event('unknown-owner', 'warning', { owner });
    else if (a.reports !== true) report.count('notDelivered');
    else out.push({ owner, login: a.login });
  }
  return out;
}

/** Per-account reports written at once: each is two small puts (fsynced) and a listing. */
export const DELIVERY_CONCURRENCY = 16;

/** Write each report at its path and at `latest`. */
export async function deliverReports(
  store: ObjectStore,
  reports: readonly { path: string; latest: string; body: string | (() => Promise<Buffer | string>) }[],
  report: ReportBuilder,
): Promise<void> {
  await eachLimit(reports, DELIVERY_CONCURRENCY, async (r) => {
    const body = typeof r.body === 'string' ? r.body : await r.body();
    await store.put(r.path, body);
    await store.put(r.latest, body);
    report.count('delivered').count('bytesWritten', 2 * Buffer.byteLength(body));
  });
}

/**
 * Remove reports under `dir` (`/<login>/reports/<kind>/`, dated `YYYY/MM/DD/…`) of days before
 * `keepFrom` (YYYY-MM-DD); `latest` stays. Returns how many were removed.
 */
export async function pruneReports(store: ObjectStore, dir: string, keepFrom: string): Promise<number> {
  let removed = 0;
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  for (const p of await store.list(prefix)) {
    const m = /^(\d{4})\/(\d{2})\/(\d{2})\//.exec(p.slice(prefix.length));
    if (m && `${m[1]}-${m[2]}-${m[3]}` < keepFrom) {
      await store.delete(p);
      removed++;
    }
  }
  return removed;
}
