/**
 * SYNTHETIC compute usage: marlin-agent meter records of made-up compute jobs, in the format
 * the real agent wrote (MANTA-REFERENCE §9.2), uploaded where logpush put them
 * (`/poseidon/stor/logs/marlin-agent/YYYY/MM/DD/HH/<node>.log`, §9.1). The bundled deployment
 * has no compute service; this is what `remora workload --compute` writes so compute metering
 * has input. Nothing here is a measurement: jobs, durations and byte rates are drawn from a seed
 * (the same seed and spec give byte-identical logs).
 *
 * What is simulated, as marlin's agent does it:
 *   - a few compute nodes, each with one agent; every 5 minutes (agent-wide, from the agent's
 *     start) a forced checkpoint of every running task (`timeTasksCheckpoint` 300000 ms);
 *   - jobs of 1–3 phases, the phases one after the other, 1–6 tasks per phase on random nodes;
 *     task durations from under a second to 40 minutes, so tasks span checkpoints and hours;
 *   - per task: TaskStart (no usage), TaskCheckpoint at each tick it is running, TaskDone. The
 *     first record after the zero carries `metricsCumul` only; later ones also `metricsDelta`
 *     (the difference from the previous checkpoint); `config_disk` only in `metricsCumul`;
 *   - `memory.physcap` = the phase's memory × 2^20, `config_disk` = max(phase disk, 8) GiB;
 *   - every record goes into the log of the hour in which it was written (log rotation);
 *   - around them, other agent lines (not meter records) and an SMF line at an agent start.
 */
import { SeededRandom } from '../core/clock.js';
import { RemoraError } from '../core/errors.js';
import { listAccounts } from '../frontdoor/accounts.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import { MARLIN_AGENT_LOG_ROOT, hourDir } from '../jobs/compute-metering/compute-metering.rules.js';
import type { ObjectStore } from '../objectstore/object-store.js';

export interface ComputeWorkloadSpec {
  seed: number;
  /** Account UUIDs that own the jobs. */
  owners: string[];
  /** Start of the first hour (ms, on an hour boundary). */
  from: number;
  hours: number;
  jobs: number;
  /** Compute nodes (one agent log per node per hour). */
  nodes: number;
}

export const DEFAULT_COMPUTE_SPEC = { jobs: 6, nodes: 3, hours: 3 };

export interface AgentLog {
  path: string;
  lines: string[];
}

const HOUR_MS = 3_600_000;
/** marlin agentconfig.coal.json `timeTasksCheckpoint`. */
const CHECKPOINT_MS = 300_000;
const MEMORY_MIB = [256, 512, 1024, 2048, 4096];
const DISK_GIB = [2, 4, 8, 16, 32, 64];
/** agentconfig zoneDefaults.quota: config_disk = max(phase disk, 8). */
const DEFAULT_QUOTA_GIB = 8;

interface Node {
  hostname: string;
  serverUuid: string;
  pid: number;
  /** Agent start (ms): its forced checkpoints fall at start + k × 5 min. */
  agentStart: number;
}

interface Line {
  at: number;
  seq: number;
  text: string;
}

/** Cumulative counters of a task at `elapsedNs` since its zero (linear rates: a model, not data). */
function counters(elapsedNs: number, rates: { in: number; out: number }) {
  const s = elapsedNs / 1e9;
  return {
    ns: elapsedNs,
    rbytes: Math.floor(s * rates.in),
    obytes: Math.floor(s * rates.out),
    cpuNs: Math.floor(elapsedNs * 0.7),
  };
}

type Counters = ReturnType<typeof counters>;

function metrics(c: Counters, memMiB: number, disk?: number): Record<string, unknown> {
  const physcap = memMiB * 1_048_576;
  return {
    hrtimestamp: [Math.floor(c.ns / 1e9), c.ns % 1e9],
    cpu: {
      snaptime: c.ns,
      data: { nsec_user: c.cpuNs, nsec_sys: Math.floor(c.cpuNs / 10), nsec_waitrq: 0, avenrun_1min: 256 },
    },
    memory: {
      snaptime: c.ns,
      data: {
        rss: Math.floor(physcap / 3),
        physcap,
        swap: Math.floor(physcap / 2),
        swapcap: physcap,
        nover: 0,
      },
    },
    vnic0: {
      snaptime: c.ns,
      data: {
        ierrors: 0,
        rbytes64: c.rbytes,
        ipackets64: Math.floor(c.rbytes / 1448),
        obytes64: c.obytes,
        opackets64: Math.floor(c.obytes / 1448),
      },
    },
    ...(disk === undefined ? {} : { config_disk: disk }),
  };
}

function diff(a: Counters, b: Counters): Counters {
  return {
    ns: a.ns - b.ns,
    rbytes: a.rbytes - b.rbytes,
    obytes: a.obytes - b.obytes,
    cpuNs: a.cpuNs - b.cpuNs,
  };
}

/** One bunyan line: bunyan's fields first, the record's, then msg, time, v (§9.2). */
function bunyan(node: Node, at: number, fields: Record<string, unknown>, msg = ''): string {
  return JSON.stringify({
    name: 'MarlinAgent',
    hostname: node.hostname,
    pid: node.pid,
    level: 30,
    ...fields,
    msg,
    time: new Date(at).toISOString(),
    v: 0,
  });
}

/** Every agent log of the window, sorted by path; lines in each sorted by time. */
export function generateComputeMeterLogs(spec: ComputeWorkloadSpec): AgentLog[] {
  const rnd = new SeededRandom(spec.seed);
  const end = spec.from + spec.hours * HOUR_MS;
  const nodes: Node[] = Array.from({ length: spec.nodes }, (_, i) => ({
    hostname: `RA${10146 + i}`,
    serverUuid: rnd.uuid(),
    pid: 4000 + rnd.int(6000),
    agentStart: spec.from - rnd.int(CHECKPOINT_MS),
  }));
  const lines: Line[][] = nodes.map(() => []);
  let seq = 0;
  const emit = (n: number, at: number, text: string) => lines[n]!.push({ at, seq: seq++, text });
  // Node 0's agent restarts one second into the window: an SMF line and an AgentStart record.
  if (nodes[0]) {
    const restart = spec.from + 1000;
    nodes[0].agentStart = restart;
    emit(
      0,
      restart,
      `[ ${new Date(restart).toUTCString()} Executing start method ("/opt/smartdc/marlin/agent/sbin/agent") ]`,
    );
    emit(
      0,
      restart,
      bunyan(nodes[0], restart, {
        event: 'AgentStart',
        computeAudit: true,
        serverUuid: nodes[0].serverUuid,
        mantaComputeId: nodes[0].hostname,
      }),
    );
  }
  for (let h = 0; h < spec.hours; h++)
    nodes.forEach((node, n) => {
      const at = spec.from + h * HOUR_MS + 30_000 + rnd.int(60_000);
      emit(n, at, bunyan(node, at, { nrunning: 0 }, 'agent status'));
    });

  for (let j = 0; j < spec.jobs; j++) {
    const owner = rnd.pick(spec.owners);
    const jobId = rnd.uuid();
    const nphases = 1 + rnd.int(3);
    // The first job has a task that runs across the first hour boundary (checkpoints on both sides).
    let phaseStart =
      j === 0
        ? spec.from + 50 * 60_000
        : spec.from + 2000 + rnd.int(Math.max(1, spec.hours * HOUR_MS - 20 * 60_000));
    for (let phase = 0; phase < nphases; phase++) {
      const memory = rnd.pick(MEMORY_MIB);
      const disk = Math.max(rnd.pick(DISK_GIB), DEFAULT_QUOTA_GIB);
      const ntasks = 1 + rnd.int(6);
      let phaseEnd = phaseStart;
      for (let t = 0; t < ntasks; t++) {
        const n = rnd.int(nodes.length);
        const node = nodes[n]!;
        const start = phaseStart + rnd.int(60_000);
        const kind = rnd.next();
        let dur =
          j === 0 && phase === 0 && t === 0 && spec.hours > 1
            ? 25 * 60_000
            : kind < 0.2
              ? 100 + rnd.int(800)
              : kind < 0.7
                ? 2000 + rnd.int(240_000)
                : 300_000 + rnd.int(35 * 60_000);
        dur = Math.min(dur, end - 1000 - start);
        if (dur < 50) continue;
        const rates = { in: 1000 + rnd.int(5_000_000), out: 500 + rnd.int(500_000) };
        const ids = { jobId, owner, phase, taskId: rnd.uuid() };
        const meta = { computeAudit: true, serverUuid: node.serverUuid, mantaComputeId: node.hostname };
        emit(n, start, bunyan(node, start, { ...ids, event: 'TaskStart', ...meta }));
        emit(n, start, bunyan(node, start, { jobId, taskId: ids.taskId }, 'task dispatched'));
        let prev: Counters | undefined;
        const record = (at: number, event: string) => {
          const c = counters((at - start) * 1e6 + rnd.int(1_000_000), rates);
          const delta = prev ? { metricsDelta: metrics(diff(c, prev), memory) } : {};
          const hr = [1_000_000 + Math.floor(at / 1000), rnd.int(1e9)];
          emit(
            n,
            at,
            bunyan(node, at, {
              hrtimestamp: hr,
              metricsCumul: metrics(c, memory, disk),
              ...delta,
              ...ids,
              event,
              ...meta,
            }),
          );
          prev = c;
        };
        const firstTick =
          node.agentStart + Math.ceil((start - node.agentStart + 1) / CHECKPOINT_MS) * CHECKPOINT_MS;
        for (let tick = firstTick; tick < start + dur; tick += CHECKPOINT_MS) record(tick, 'TaskCheckpoint');
        record(start + dur, 'TaskDone');
        phaseEnd = Math.max(phaseEnd, start + dur);
      }
      phaseStart = phaseEnd + 1000 + rnd.int(4000);
      if (phaseStart >= end - 2000) break;
    }
  }

  const logs = new Map<string, string[]>();
  nodes.forEach((node, n) => {
    for (const l of lines[n]!.sort((a, b) => a.at - b.at || a.seq - b.seq)) {
      const at = new Date(l.at);
      const path = `${MARLIN_AGENT_LOG_ROOT}/${hourDir(at.toISOString().slice(0, 10), at.getUTCHours())}/${node.hostname}.log`;
      let body = logs.get(path);
      if (!body) logs.set(path, (body = []));
      body.push(l.text);
    }
  });
  return [...logs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, l]) => ({ path, lines: l }));
}

export interface ComputeWorkloadResult {
  logs: string[];
  lines: number;
  from: string;
  hours: number;
  synthetic: true;
}

/** Generate and upload the agent logs (content-type as logpush.sh: application/json). */
export async function writeComputeWorkload(
  store: ObjectStore,
  spec: ComputeWorkloadSpec,
): Promise<ComputeWorkloadResult> {
  const logs = generateComputeMeterLogs(spec);
  for (const l of logs)
    await store.put(l.path, `${l.lines.join('\n')}\n`, { 'content-type': 'application/json' });
  return {
    logs: logs.map((l) => l.path),
    lines: logs.reduce((n, l) => n + l.lines.length, 0),
    from: new Date(spec.from).toISOString(),
    hours: spec.hours,
    synthetic: true,
  };
}

/** `YYYY-MM-DDTHH` → ms, or a UsageError naming the flag. */
export function parseHourFlag(value: string, flag: string): number {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2})$/.exec(value);
  const ms = m ? Date.parse(`${m[1]}T${m[2]}:00:00Z`) : NaN;
  if (!m || Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 13) !== value)
    throw new RemoraError('UsageError', `${flag}: not an hour (YYYY-MM-DDTHH, UTC): ${value}`);
  return ms;
}

/**
 * The window's first hour (ms): `from` (`YYYY-MM-DDTHH`), else `hours` before the current hour;
 * a UsageError when it reaches into an hour that has not ended (an agent uploads an hour's log
 * after it ends). Checked before anything is opened.
 */
export function computeWindow(from: string | undefined, hours: number, now: number): number {
  const current = Math.floor(now / HOUR_MS) * HOUR_MS;
  const start = from === undefined ? current - hours * HOUR_MS : parseHourFlag(from, '--from');
  if (start + hours * HOUR_MS > current)
    throw new RemoraError(
      'UsageError',
      `--from ${new Date(start).toISOString().slice(0, 13)} --hours ${hours} reaches into an hour that has not ended ` +
        `(now ${new Date(now).toISOString()}): agents upload an hour's log after it ends; pick earlier hours`,
    );
  return start;
}

/** `remora workload --compute`: synthetic meter records for jobs of the deployment's accounts (not the operator). */
export async function runComputeWorkload(
  tier: MetadataTier,
  store: ObjectStore,
  r: Omit<ComputeWorkloadSpec, 'owners'>,
): Promise<ComputeWorkloadResult> {
  const owners = (await listAccounts(tier)).filter((a) => !a.operator).map((a) => a.uuid);
  if (owners.length === 0)
    throw new RemoraError(
      'UsageError',
      'the deployment has no accounts to own compute jobs: run `remora workload` or `remora accounts create <login>` first',
    );
  return writeComputeWorkload(store, { ...r, owners });
}
