/**
 * The input of the hourly metering jobs that read the front door's audit logs (request
 * metering, access logs): the objects under `/poseidon/stor/logs/muskie/YYYY/MM/DD/HH/`.
 *
 * When an hour is ready (docs/metering.md "Late logs"):
 *   1. the hour has ended on the pipeline's clock, and
 *   2. every front door instance that was up during the hour (each records itself every few
 *      seconds: src/metadata/frontdoor-hours.repository.ts) has its log object there —
 *      `<instance>.log`, or `<instance>.<n>.log` for a later part; a quiet instance publishes an
 *      empty one.
 * Until then the run waits (and alerts at its deadline, naming the missing instances). Against a
 * deployment whose front doors do not record themselves, 2 is empty: the run reads what is there
 * once the hour has ended, and a log arriving later reruns the hour (`logsChanged`).
 */
import { z } from 'zod';
import { instanceOfLog, MUSKIE_LOG_ROOT } from '../../frontdoor/audit-log.js';
import { frontDoorsUpDuring } from '../../metadata/frontdoor-hours.repository.js';
import type { ChunkFile } from '../../objectstore/local-chunks.js';
import type { ObjectStore } from '../../objectstore/object-store.js';
import type { ExternalInput, JobDefinition, TaskContext } from '../../pipeline/job.js';
import { partitionDueMs } from '../../pipeline/partitions.js';

/** One log object as read: its path, size and sha256 (what a later check compares). */
export type LogObject = ChunkFile;

/** The schema of a LogObject in a committed output. */
export const logObjectSchema = z.object({ path: z.string(), bytes: z.number(), sha256: z.string() });

/** `2024-03-01T05` → `/poseidon/stor/logs/muskie/2024/03/01/05/`. */
export function hourLogDir(hourKey: string): string {
  return `${MUSKIE_LOG_ROOT}/${hourKey.slice(0, 10).replaceAll('-', '/')}/${hourKey.slice(11, 13)}/`;
}

/** The hour's log objects, sorted by path (the order every reader uses, so reruns agree). */
export async function listHourLogs(store: ObjectStore, hourKey: string): Promise<LogObject[]> {
  const out: LogObject[] = [];
  for (const path of await store.list(hourLogDir(hourKey))) {
    if (!path.endsWith('.log')) continue;
    const h = await store.head(path);
    if (h) out.push({ path, bytes: h.bytes, sha256: h.sha256 });
  }
  return out;
}

function instanceOfPath(path: string): string {
  return instanceOfLog(path.slice(path.lastIndexOf('/') + 1));
}

/** The hour ended and every instance that was up has published its log. */
export const muskieLogsReady: ExternalInput = {
  name: 'front door audit logs',
  exists: async ({ services, partition }) => {
    const hourKey = partition.key;
    const end = partitionDueMs(partition);
    if (services.clock.now() < end)
      return { ready: false, detail: `hour ${hourKey} ends ${new Date(end).toISOString()}`, dueAt: end };
    const expected = await frontDoorsUpDuring(services.tier.control, hourKey);
    if (expected.length === 0) return { ready: true };
    const present = new Set((await services.store.list(hourLogDir(hourKey))).map(instanceOfPath));
    const missing = expected.filter((i) => !present.has(i));
    if (missing.length === 0) return { ready: true };
    return {
      ready: false,
      detail: `hour ${hourKey}: no audit log yet from front door ${missing.join(', ')} (up during the hour) under ${hourLogDir(hourKey)}`,
    };
  },
};

/** What changed in an hour's logs since `read` was taken (a late or replaced object), or undefined. */
export async function logsChanged(
  store: ObjectStore,
  hourKey: string,
  read: readonly LogObject[],
): Promise<string | undefined> {
  const before = new Map(read.map((l) => [l.path, l]));
  const changes: string[] = [];
  const now = await listHourLogs(store, hourKey);
  for (const l of now) {
    const b = before.get(l.path);
    if (!b) changes.push(`${l.path} arrived (${l.bytes} bytes)`);
    else if (b.sha256 !== l.sha256) changes.push(`${l.path} was replaced (${b.bytes} → ${l.bytes} bytes)`);
  }
  const gone = read.filter((l) => !now.some((n) => n.path === l.path));
  for (const l of gone) changes.push(`${l.path} was removed`);
  return changes.length > 0 ? changes.join('; ') : undefined;
}

/** A task of an hourly log job: the hour's log objects. */
export interface HourLogsParams {
  logs: LogObject[];
}

/**
 * What every job over an hour of audit logs shares: the hour partition, the readiness above, one
 * task over the hour's objects (none for an hour without logs), and the late-log rerun. The job
 * adds its name, description, output type, `runTask` and `commit`.
 */
export function hourlyLogJob<T, O extends { logs: LogObject[] }>(
  job: Omit<
    JobDefinition<HourLogsParams, T, O>,
    'partition' | 'inputs' | 'deadlineMs' | 'split' | 'inputsChanged'
  > & {
    runTask(ctx: TaskContext<HourLogsParams>): ReturnType<JobDefinition<HourLogsParams, T, O>['runTask']>;
  },
): JobDefinition<HourLogsParams, T, O> {
  return {
    partition: 'hour',
    inputs: { external: [muskieLogsReady] },
    // The original ran at :19 past the hour; a front door log two hours late is worth an alert.
    deadlineMs: 2 * 3_600_000,
    maxAttempts: 5,
    taskTimeoutMs: 30 * 60_000,
    // Judged by MALFORMED_LIMIT per log object (a fatal event), not by the pipeline's share.
    thresholds: { maxMalformedShare: 1, minRecordsForShare: 0 },
    split: async (ctx) => {
      const logs = await listHourLogs(ctx.services.store, ctx.partition.key);
      return logs.length > 0 ? [{ key: 'logs', params: { logs } }] : [];
    },
    inputsChanged: ({ services, partition, output }) =>
      logsChanged(services.store, partition.key, output.logs),
    ...job,
  };
}
