/**
 * Reading one agent log (one compute node's hour): the lines of a marlin-agent bunyan log in,
 * usage per task out, then per phase. The equivalent of marlin's `MarlinMeterReader` with
 * `summaryType: 'deltas'` followed by mackerel's compute-map (MANTA-REFERENCE §9.3, §9.4), with
 * the decisions of compute-metering.rules.ts. Pure: no I/O; problems go to the report.
 *
 * Line handling, as BunyanReader:
 *   - every line counts in `recordsScanned` (the original's "log records");
 *   - a line whose first character is not `{` (SMF `[ … ]` lines, blank lines) is skipped
 *     (`nonJsonLines`);
 *   - a line starting with `{` that does not parse is `malformed` (event `malformed-line`);
 *   - a record without a truthy `computeAudit` is another agent log line (`otherLogRecords`);
 *   - AgentStart counts `agentRestarts` (usage since the last checkpoint of the tasks running
 *     then was never recorded: an info event); TaskStart carries no usage (`otherMeterRecords`).
 */
import type { ReportBuilder } from '../../core/run-report.js';
import {
  addPhase,
  BYTES_PER_MIB,
  NS_PER_S,
  taskSeconds,
  type PhaseMap,
  type PhaseRow,
} from './compute-metering.rules.js';

interface TaskUsage {
  owner: string;
  jobId: string;
  phase: string;
  ns: bigint;
  in: bigint;
  out: bigint;
  physcap: number | undefined;
  disk: number | undefined;
}

/** A usable TaskCheckpoint/TaskDone, or the reason it is not. */
type Parsed = { ok: true; task: string; usage: TaskUsage } | { ok: false; reason: string };

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';

/** `obj.<key>.data.<field>` of a metrics object (jsprim.pluck of a flattened kstat). */
function kstat(metrics: Json, key: string, field: string): unknown {
  const k = metrics[key];
  return isObject(k) && isObject(k.data) ? k.data[field] : undefined;
}

function parseMeterRecord(r: Json): Parsed {
  if (!nonEmpty(r.owner) || !nonEmpty(r.jobId) || !nonEmpty(r.taskId))
    return { ok: false, reason: 'no owner, jobId or taskId' };
  // phase: the 0-based index (a number) since MANTA-1496; "-" when absent (meter.js:517-548).
  const phase = r.phase === undefined ? '-' : r.phase;
  if (!(isCount(phase) || nonEmpty(phase))) return { ok: false, reason: 'phase is not an index' };
  if (r.metricsDelta !== undefined && !isObject(r.metricsDelta))
    return { ok: false, reason: 'metricsDelta is not an object' };
  const metrics = isObject(r.metricsDelta) ? r.metricsDelta : r.metricsCumul;
  if (!isObject(metrics)) return { ok: false, reason: 'no metricsDelta or metricsCumul object' };
  const t = metrics.hrtimestamp;
  if (!Array.isArray(t) || t.length !== 2 || !isCount(t[0]) || !isCount(t[1]) || t[1] >= 1e9)
    return { ok: false, reason: 'hrtimestamp is not an elapsed [s, ns]' };
  const rb = kstat(metrics, 'vnic0', 'rbytes64');
  const ob = kstat(metrics, 'vnic0', 'obytes64');
  if (!isCount(rb) || !isCount(ob)) return { ok: false, reason: 'no vnic0 rbytes64/obytes64' };
  const physcap = kstat(metrics, 'memory', 'physcap');
  // config_disk is only ever written into metricsCumul (agent.js:1672-1675): read it there.
  const disk = isObject(r.metricsCumul) ? r.metricsCumul.config_disk : undefined;
  const owner = r.owner;
  const jobId = r.jobId;
  const phaseKey = String(phase);
  return {
    ok: true,
    task: JSON.stringify([owner, jobId, r.taskId, phaseKey]),
    usage: {
      owner,
      jobId,
      phase: phaseKey,
      ns: BigInt(t[0]) * NS_PER_S + BigInt(t[1]),
      in: BigInt(rb),
      out: BigInt(ob),
      physcap: isCount(physcap) && physcap > 0 ? physcap : undefined,
      disk: isCount(disk) ? disk : undefined,
    },
  };
}

/** The agent logs of one hour are read one by one into a reader each. */
export class AgentLogReader {
  private readonly tasks = new Map<string, TaskUsage>();

  constructor(
    private readonly report: ReportBuilder,
    /** Where the lines come from (the object's path), for examples. */
    private readonly source: string,
    /** The hour's bounds (ms): records stamped outside are counted, not moved (rules.ts). */
    private readonly hour: { start: number; end: number },
  ) {}

  line(line: string): void {
    const r = this.report;
    r.count('recordsScanned');
    if (!line.startsWith('{')) {
      r.count('nonJsonLines');
      return;
    }
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      r.count('malformed').event('malformed-line', 'error', { source: this.source, line });
      return;
    }
    if (!isObject(rec) || !rec.computeAudit) {
      r.count('otherLogRecords');
      return;
    }
    r.count('meterRecords');
    if (rec.event === 'AgentStart') {
      r.count('agentRestarts').event('agent-restart', 'info', { source: this.source, time: rec.time });
      return;
    }
    if (rec.event !== 'TaskCheckpoint' && rec.event !== 'TaskDone') {
      r.count('otherMeterRecords');
      return;
    }
    const p = parseMeterRecord(rec);
    if (!p.ok) {
      r.count('malformed').event('bad-meter-record', 'error', {
        source: this.source,
        reason: p.reason,
        line,
      });
      return;
    }
    r.count('processed');
    const at = typeof rec.time === 'string' ? Date.parse(rec.time) : NaN;
    if (!(at >= this.hour.start && at < this.hour.end)) {
      r.count('recordsOutsideHour').event('record-outside-hour', 'info', {
        source: this.source,
        time: rec.time,
      });
    }
    const u = this.tasks.get(p.task);
    if (!u) {
      this.tasks.set(p.task, p.usage);
      return;
    }
    u.ns += p.usage.ns;
    u.in += p.usage.in;
    u.out += p.usage.out;
    // Levels: the newest record's value, unless it has none (the original replaced even with undefined).
    u.physcap = p.usage.physcap ?? u.physcap;
    u.disk = p.usage.disk ?? u.disk;
  }

  /** This log's usage per phase, added into `into`; counts the tasks (`tasks`). */
  addTo(into: PhaseMap): void {
    for (const t of this.tasks.values()) {
      const row: PhaseRow = {
        owner: t.owner,
        jobId: t.jobId,
        phase: t.phase,
        memory: t.physcap === undefined ? undefined : t.physcap / BYTES_PER_MIB,
        disk: t.disk,
        seconds: taskSeconds(t.ns),
        ntasks: 1n,
        in: t.in,
        out: t.out,
      };
      this.report.count('tasks');
      if (row.memory === undefined || row.disk === undefined)
        this.report.event('task-without-memory-or-disk', 'warning', {
          source: this.source,
          owner: t.owner,
          jobId: t.jobId,
          phase: t.phase,
        });
      if (addPhase(into, row))
        this.report.event('phase-resources-disagree', 'warning', {
          source: this.source,
          owner: t.owner,
          jobId: t.jobId,
          phase: t.phase,
          memory: row.memory,
          disk: row.disk,
        });
    }
  }
}
