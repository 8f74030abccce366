/**
 * Publishing a usage report the way mackerel's deliver-usage.js and meter.js did, for every
 * metering job (storage, compute, request): generic over the report kind.
 *
 *   operator  <root>/YYYY/MM/DD/HH/hHH.json   every owner, one JSON line each (`owner` kept)
 *             <root>/latest                    (the original snaplinked it after the job)
 *   account   /<login>/reports/usage/<kind>/YYYY/MM/DD/HH/hHH.json  one line, no `owner`, `date`
 *             /<login>/reports/usage/<kind>/latest
 *
 * Only accounts with `reports: true` get their copy (DELIVER_UNAPPROVED_REPORTS=false); an owner
 * with no account is a `unknown-owner` warning and stays in the operator file. `latest` is a
 * copy that names its period in its metadata (`m-usage-period`): a rerun of an older period
 * never moves `latest` back. Per-account reports older than the retention window are removed
 * (RFD 16 problem 7).
 *
 * Side by side with the original (`pipeline.outputPrefix`): callers name the original's paths;
 * every put, `latest` and prune goes to `publishedPath` of them (src/core/published-path.ts), so
 * retention only ever lists and removes Remora's own copies, never the original's.
 */
import { eachLimit } from '../../core/concurrency.js';
import { publishedPath } from '../../core/published-path.js';
import type { ReportBuilder } from '../../core/run-report.js';
import { listAccounts } from '../../frontdoor/accounts.js';
import type { ObjectStore } from '../../objectstore/object-store.js';
import type { PipelineServices } from '../../pipeline/job.js';

/** Per-account reports written at once: each is two small puts (fsynced) and a listing. */
const DELIVERY_CONCURRENCY = 16;
const PERIOD_META = 'm-usage-period';

/** Lines as a JSON-lines body (`""` for none). */
export function jsonLines(values: unknown[]): string {
  return values.length > 0 ? `${values.map((v) => JSON.stringify(v)).join('\n')}\n` : '';
}

/**
 * Write `latest` unless it already names a later period (periods compare as text:
 * `YYYY-MM-DDTHH`). Returns whether it was written.
 */
export async function putLatest(
  store: ObjectStore,
  latest: string,
  body: string,
  period: string,
): Promise<boolean> {
  const head = await store.head(latest);
  const current = head?.meta[PERIOD_META];
  if (current !== undefined && current > period) return false;
  await store.put(latest, body, { [PERIOD_META]: period });
  return true;
}

/** Remove an account's reports of days before `keepFrom` (YYYY-MM-DD) under `dir`; `latest` stays. */
export async function pruneReportsBefore(store: ObjectStore, dir: string, keepFrom: string): Promise<number> {
  let removed = 0;
  const prefix = `${dir}/`;
  for (const p of await store.list(prefix)) {
    const m = /^(\d{4})\/(\d{2})\/(\d{2})\//.exec(p.slice(prefix.length));
    if (m && `${m[1]}-${m[2]}-${m[3]}` < keepFrom) {
      await store.delete(p);
      removed++;
    }
  }
  return removed;
}

export interface AccountDelivery {
  /** Owners in the operator file. */
  owners: string[];
  /** `/<login>/reports/usage/<kind>` */
  userDir(login: string): string;
  /** The account's file for this period. */
  userPath(login: string): string;
  /** The account's one line (without `owner`, with `date`). */
  userRecord(owner: string): unknown;
  /** This period, `YYYY-MM-DDTHH` (or `YYYY-MM-DD`): orders `latest`. */
  period: string;
  /** Reports of days before this one are pruned. */
  keepFrom: string;
  /** `pipeline.outputPrefix`: the paths above are the original's; Remora's are published under it. */
  outputPrefix?: string;
}

/** Where per-account reports go: the accounts' namespaces (front door) when known, else the pipeline's store. */
export function reportsStoreOf(services: Pick<PipelineServices, 'store' | 'reportsStore'>): ObjectStore {
  return services.reportsStore ?? services.store;
}

/** Deliver each owner's copy to its account; counters `delivered`, `notDelivered`, `reportsPruned`. */
export async function deliverToAccounts(
  services: Pick<PipelineServices, 'tier' | 'store' | 'reportsStore'>,
  report: ReportBuilder,
  d: AccountDelivery,
): Promise<void> {
  const accounts = new Map((await listAccounts(services.tier)).map((a) => [a.uuid, a]));
  const deliveries: { login: string; owner: string }[] = [];
  for (const owner of d.owners) {
    const acct = accounts.get(owner);
    if (!acct) {
      report.event('unknown-owner', 'warning', { owner });
      continue;
    }
    if (acct.reports !== true) {
      report.count('notDelivered');
      continue;
    }
    deliveries.push({ login: acct.login, owner });
  }
  const store = reportsStoreOf(services);
  const at = (original: string) => publishedPath(d.outputPrefix, original);
  await eachLimit(deliveries, DELIVERY_CONCURRENCY, async ({ login, owner }) => {
    const body = jsonLines([d.userRecord(owner)]);
    await store.put(at(d.userPath(login)), body);
    await putLatest(store, at(`${d.userDir(login)}/latest`), body, d.period);
    report.count('delivered');
  });
  await pruneAccounts(store, report, [...accounts.values()], (l) => d.userDir(l), d.keepFrom, d.outputPrefix);
}

/**
 * Retention of one report kind (RFD 16 problem 7): remove every account's reports of days before
 * `keepFrom` under `dir(login)` — delivered this run or not (reports turned off, no usage this
 * period); `latest` stays. Counter `reportsPruned`. One listing per account per delivering run.
 * `dir` names the original's directory; with `outputPrefix` only Remora's twin of it is pruned.
 */
export async function pruneAccounts(
  store: ObjectStore,
  report: ReportBuilder,
  accounts: readonly { login: string }[],
  dir: (login: string) => string,
  keepFrom: string,
  outputPrefix: string | undefined,
): Promise<void> {
  report.count('reportsPruned', 0);
  await eachLimit(accounts, DELIVERY_CONCURRENCY, async ({ login }) => {
    const removed = await pruneReportsBefore(store, publishedPath(outputPrefix, dir(login)), keepFrom);
    report.count('reportsPruned', removed);
  });
}
