/**
 * Compute metering rules (MANTA-REFERENCE §9, §3.6 "Compute"; mackerel compute-map.js,
 * compute-reduce.js, deliver-usage.js; marlin common/lib/meter.js MarlinMeterReader).
 *
 * Words:
 *   agent log   one object `/poseidon/stor/logs/marlin-agent/YYYY/MM/DD/HH/<cn>.log`: one
 *               compute node's marlin-agent log for one hour (logadm rotation + logpush, §9.1)
 *   meter record a bunyan line with `computeAudit: true` (AgentStart, TaskStart, TaskCheckpoint,
 *               TaskDone); only TaskCheckpoint and TaskDone carry usage (§9.2)
 *   task key    (owner, jobId, taskId, phase); phase is the 0-based index, or "-" when absent
 *   phase usage per (owner, jobId, phase) for the hour: memory (MiB), disk (GiB), seconds,
 *               ntasks, bandwidth in/out (bytes)
 *
 * As the original:
 *   - the hour of a record is the hour of the log object it is in (log rotation), whatever its
 *     `time`; every record of the hour's objects is counted (§9.1: no startTime/endTime);
 *   - usage of a record = its `metricsDelta` if present, else its `metricsCumul` (the first
 *     record after a zero carries the cumulative only, which is its delta) (§9.3);
 *   - `time` is the elapsed `[s, ns]` of that object's `hrtimestamp`, `vnic0.rbytes64/obytes64`
 *     are summed, `memory.physcap` (bytes) is a level: the phase's memory in MiB;
 *   - seconds are rounded half up; ntasks counts the tasks seen in the hour (a task whose records
 *     fall in two hours counts in both); bandwidth is exact (decimal strings);
 *   - operator line `{"owner","jobs":{jobId:{phase:{memory,disk,seconds,ntasks,bandwidth:{in,out}}}}}`
 *     with every number a string; the account's copy drops `owner` and adds `date` (§9.5).
 *
 * Decisions where the original's code has quirks (docs/metering-compute.md "Decisions"):
 *   - **the 1 s minimum applies per task** (each task's time in the hour, rounded half up, at
 *     least 1), as mackerel's docs promise ("If a task takes less than 1 second of wall time, it
 *     is rounded up to 1 second"). The original's code applied it to the phase's summed time per
 *     agent log, so the bill of a phase depended on how many compute nodes its tasks ran on;
 *   - **disk is read from `metricsCumul.config_disk` of every record** (it is only ever written
 *     there). The original read it from the chosen (delta) object, so it lost `disk` whenever a
 *     task's last record of the hour had a delta, and then billed by memory alone;
 *   - **memory and disk of a phase** are the largest seen over its tasks, not the first task's in
 *     arrival order (order-dependent in the original); tasks that disagree are a warning event;
 *   - a meter record that cannot be used (no owner/jobId/taskId, usage not an object, bad
 *     `hrtimestamp`, no vnic0 byte counters) is `malformed` with an example, like an unparsable
 *     line; the original crashed compute-map on some of them and silently dropped others.
 */

/** Where marlin-agent logs are uploaded (logpush.sh, §9.1). */
export const MARLIN_AGENT_LOG_ROOT = '/poseidon/stor/logs/marlin-agent';
export const COMPUTE_USAGE_ROOT = '/poseidon/stor/usage/compute';

export const NS_PER_S = 1_000_000_000n;
/** memory.physcap is in bytes; reports are in MiB (compute-map.js: physcap / 1048576). */
export const BYTES_PER_MIB = 1_048_576;

/** `YYYY-MM-DD`, hour → `YYYY/MM/DD/HH`. */
export function hourDir(day: string, hour: number): string {
  return `${day.replaceAll('-', '/')}/${String(hour).padStart(2, '0')}`;
}

/** The hour's agent logs: every object under this prefix (FindKeyGenerator, no regex). */
export function agentLogPrefix(day: string, hour: number): string {
  return `${MARLIN_AGENT_LOG_ROOT}/${hourDir(day, hour)}/`;
}

export function hourFile(hour: number): string {
  return `h${String(hour).padStart(2, '0')}.json`;
}

export function operatorReportPath(day: string, hour: number): string {
  return `${COMPUTE_USAGE_ROOT}/${hourDir(day, hour)}/${hourFile(hour)}`;
}

export function operatorLatestPath(): string {
  return `${COMPUTE_USAGE_ROOT}/latest`;
}

export function userReportDir(login: string): string {
  return `/${login}/reports/usage/compute`;
}

export function userReportPath(login: string, day: string, hour: number): string {
  return `${userReportDir(login)}/${hourDir(day, hour)}/${hourFile(hour)}`;
}

/** deliver-usage.js DATE: `YYYY-MM-DDTHH:00:00.000Z`. */
export function reportDate(day: string, hour: number): string {
  return `${day}T${String(hour).padStart(2, '0')}:00:00.000Z`;
}

/** One phase's usage in one hour (or one agent log, before the merge). */
export interface PhaseUsage {
  /** MiB, from physcap; undefined when no record of the phase carried memory.physcap. */
  memory: number | undefined;
  /** GiB, from metricsCumul.config_disk; undefined when no record carried it. */
  disk: number | undefined;
  seconds: bigint;
  ntasks: bigint;
  in: bigint;
  out: bigint;
}

/** One row of a partial file and of the merge: a phase of a job of an owner. */
export interface PhaseRow extends PhaseUsage {
  owner: string;
  jobId: string;
  phase: string;
}

/** Seconds billed for one task's time in the hour: rounded half up, at least 1 (decision above). */
export function taskSeconds(ns: bigint): bigint {
  const s = (ns + NS_PER_S / 2n) / NS_PER_S;
  return s < 1n ? 1n : s;
}

/** The larger of two optional levels (memory, disk): order-independent. */
function maxLevel(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.max(a, b);
}

export type PhaseMap = Map<string, Map<string, Map<string, PhaseUsage>>>;

/**
 * Add a row into owner → jobId → phase. Returns true when the row's memory or disk disagrees
 * with what the phase already had (a warning for the caller: tasks of one phase share its
 * memory and disk in Marlin).
 */
export function addPhase(into: PhaseMap, r: PhaseRow): boolean {
  let jobs = into.get(r.owner);
  if (!jobs) into.set(r.owner, (jobs = new Map<string, Map<string, PhaseUsage>>()));
  let phases = jobs.get(r.jobId);
  if (!phases) jobs.set(r.jobId, (phases = new Map<string, PhaseUsage>()));
  const u = phases.get(r.phase);
  if (!u) {
    phases.set(r.phase, {
      memory: r.memory,
      disk: r.disk,
      seconds: r.seconds,
      ntasks: r.ntasks,
      in: r.in,
      out: r.out,
    });
    return false;
  }
  const disagree =
    (u.memory !== undefined && r.memory !== undefined && u.memory !== r.memory) ||
    (u.disk !== undefined && r.disk !== undefined && u.disk !== r.disk);
  u.memory = maxLevel(u.memory, r.memory);
  u.disk = maxLevel(u.disk, r.disk);
  u.seconds += r.seconds;
  u.ntasks += r.ntasks;
  u.in += r.in;
  u.out += r.out;
  return disagree;
}

export interface PhaseRecord {
  memory?: string;
  disk?: string;
  seconds: string;
  ntasks: string;
  bandwidth: { in: string; out: string };
}

/** Phase keys in a stable order: numeric phases ascending, then anything else (e.g. "-"). */
function phaseOrder(a: string, b: string): number {
  const na = /^\d+$/.test(a);
  const nb = /^\d+$/.test(b);
  if (na && nb) return Number(a) - Number(b);
  if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * `{"<jobId>":{"<phase>":{memory,disk,seconds,ntasks,bandwidth:{in,out}}}}`, jobs sorted, every
 * number a string (deliver-usage.js); `memory`/`disk` absent when unknown, as JSON.stringify
 * dropped an undefined `disk` in the original.
 */
export function jobsRecord(
  jobs: Map<string, Map<string, PhaseUsage>>,
): Record<string, Record<string, PhaseRecord>> {
  const out: Record<string, Record<string, PhaseRecord>> = {};
  for (const jobId of [...jobs.keys()].sort()) {
    const phases = jobs.get(jobId)!;
    const rec: Record<string, PhaseRecord> = {};
    for (const phase of [...phases.keys()].sort(phaseOrder)) {
      const u = phases.get(phase)!;
      rec[phase] = {
        ...(u.memory === undefined ? {} : { memory: String(u.memory) }),
        ...(u.disk === undefined ? {} : { disk: String(u.disk) }),
        seconds: u.seconds.toString(),
        ntasks: u.ntasks.toString(),
        bandwidth: { in: u.in.toString(), out: u.out.toString() },
      };
    }
    out[jobId] = rec;
  }
  return out;
}
