/**
 * Drives a generated workload through the front door, as users would: accounts are
 * provisioned by the operator (there is no sign-up API), then every operation is an HTTP
 * request with that account's token. Operations run in order, so the same seed gives the
 * same namespace: the same keys with the same bytes (objectIds are the front door's).
 */
import crypto from 'node:crypto';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import { accountByLogin, createAccount } from '../frontdoor/accounts.js';
import { FrontDoorClient } from '../frontdoor/client.js';
import { RemoraError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { formatEta, formatRate, ProgressMeter } from '../core/progress.js';
import { formatBytes } from '../core/table.js';
import { type WorkloadSpec, contentFor, generateWorkload } from './generator.js';

export interface WorkloadSummary {
  accounts: number;
  directories: number;
  puts: number;
  overwrites: number;
  links: number;
  deletes: number;
  bytes: number;
  zeroByte: number;
  failures: { op: string; path: string; error: string }[];
}

/** Where a workload is: operations (directories and object operations, not accounts) done of all, bytes put. */
export interface WorkloadProgress {
  done: number;
  total: number;
  bytes: number;
}

/**
 * The operations `runWorkload` counts in its progress: the directories (all generated before
 * the first object operation, so the generator is read only that far) and one per object.
 */
export function workloadOperationCount(spec: WorkloadSpec): number {
  let dirs = 0;
  for (const op of generateWorkload(spec)) {
    if (op.op === 'mkdir') dirs++;
    else if (op.op !== 'account') break;
  }
  return dirs + spec.objects;
}

/**
 * A `runWorkload` onProgress that logs a line at most every 2 s and a final one (core/progress.ts):
 * ops done/total, ops/s, bytes, ETA — in words, and as fields for a JSON log.
 */
export function workloadProgressLog(
  log: (msg: string, fields: Record<string, unknown>) => void,
  clock: Clock,
): (p: WorkloadProgress) => void {
  // Started at the first operation, so the accounts' set-up does not count against the rate.
  let meter: ProgressMeter | undefined;
  return (p) => {
    const r = (meter ??= new ProgressMeter(clock, p.total, p.done)).due(p.done, p.total);
    if (!r) return;
    log(
      `workload: ${p.done}/${p.total} ops, ${formatRate(r.rate)} ops/s, ${formatBytes(p.bytes)} put, ETA ${formatEta(r.etaSeconds)}`,
      {
        done: p.done,
        total: p.total,
        rate: Number(r.rate.toFixed(2)),
        bytes: p.bytes,
        elapsedSeconds: Math.round(r.elapsedMs / 1000),
        etaSeconds: r.etaSeconds,
      },
    );
  };
}

export async function runWorkload(
  tier: MetadataTier,
  frontdoorUrl: string,
  spec: WorkloadSpec,
  opts: { accountPrefix?: string; onProgress?: (p: WorkloadProgress) => void } = {},
): Promise<WorkloadSummary> {
  const s: WorkloadSummary = {
    accounts: 0,
    directories: 0,
    puts: 0,
    overwrites: 0,
    links: 0,
    deletes: 0,
    bytes: 0,
    zeroByte: 0,
    failures: [],
  };
  const clients = new Map<string, FrontDoorClient>();
  const written = new Set<string>();
  const prefix = opts.accountPrefix ?? '';
  const rename = (p: string) => (prefix ? p.replace(/^\/([^/]+)/, `/${prefix}$1`) : p);
  const clientFor = (p: string): FrontDoorClient => {
    const c = clients.get(p.split('/')[1]!);
    if (!c) throw new Error(`no client for ${p}`);
    return c;
  };
  let done = 0;
  const total = opts.onProgress ? workloadOperationCount(spec) : 0;
  try {
    for (const op of generateWorkload(spec)) {
      if (op.op === 'account') {
        const login = `${prefix}${op.login}`;
        if (await accountByLogin(tier, login)) {
          throw new RemoraError(
            'BadRequest',
            `account ${login} already exists: use another --account-prefix (or a fresh deployment)`,
          );
        }
        const { token } = await createAccount(
          tier,
          { login, uuid: prefix ? crypto.randomUUID() : op.uuid, reports: op.reports },
          Date.now(),
        );
        clients.set(login, new FrontDoorClient(frontdoorUrl, token));
        s.accounts++;
        continue;
      }
      const path = rename(op.path);
      try {
        if (op.op === 'mkdir') {
          await clientFor(path).mkdir(path);
          s.directories++;
        } else if (op.op === 'put') {
          const body = contentFor(op.path, op.size);
          const md5 = crypto.createHash('md5').update(body).digest('base64');
          await clientFor(path).put(path, body, { copies: op.copies, contentMD5: md5 });
          if (written.has(path)) s.overwrites++;
          else s.puts++;
          written.add(path);
          s.bytes += op.size;
          if (op.size === 0) s.zeroByte++;
        } else if (op.op === 'link') {
          await clientFor(path).link(path, rename(op.source));
          written.add(path);
          s.links++;
        } else {
          await clientFor(path).delete(path);
          written.delete(path);
          s.deletes++;
        }
      } catch (err) {
        s.failures.push({ op: op.op, path, error: (err as Error).message });
      }
      opts.onProgress?.({ done: ++done, total, bytes: s.bytes });
    }
  } finally {
    for (const c of clients.values()) c.close();
  }
  return s;
}
