/**
 * `remora audit show --date D`: the committed audit of a day and its problems list, streamed
 * from the tasks' NDJSON files (a long list never has to fit in memory before it is printed).
 */
import readline from 'node:readline';
import { RemoraError } from '../../core/errors.js';
import type { Verdict } from '../../core/run-report.js';
import type { Queryable } from '../../metadata/moray.repository.js';
import type { ObjectStore } from '../../objectstore/object-store.js';
import { latestPointerKey, readPointer } from '../../pipeline/runs.repository.js';
import { auditOutput, type AuditOutput } from './audit.job.js';
import type { Problem } from './audit.rules.js';

export interface AuditDay {
  day: string;
  runId: number;
  verdict: Verdict;
  output: AuditOutput;
}

/** The audit the pointer names for `day`; UsageError when the day has none. */
export async function readAuditDay(control: Queryable, day: string): Promise<AuditDay> {
  const p = await readPointer(control, 'audit', day);
  if (!p)
    throw new RemoraError(
      'UsageError',
      `no committed audit for ${day}: run the day (\`remora pipeline run --date ${day}\`), or see \`remora runs\``,
    );
  return { day, runId: p.runId, verdict: p.verdict, output: auditOutput.parse(p.output) };
}

/** The latest day with a committed audit; UsageError when there is none. */
export async function latestAuditDay(control: Queryable): Promise<string> {
  const day = await latestPointerKey(control, 'audit');
  if (!day)
    throw new RemoraError(
      'UsageError',
      'no committed audit yet: run a day (`remora pipeline run --date D`), or see `remora runs`',
    );
  return day;
}

/** Every problem of an audit, file by file, line by line. */
export async function* readProblems(store: ObjectStore, out: AuditOutput): AsyncGenerator<Problem> {
  for (const f of out.problemFiles) yield* problemsOf(store, f);
}

async function* problemsOf(store: ObjectStore, file: string): AsyncGenerator<Problem> {
  const lines = readline.createInterface({ input: await store.get(file), crlfDelay: Infinity });
  for await (const line of lines) if (line !== '') yield JSON.parse(line) as Problem;
}

/**
 * The problems of one audit task (one partition group: every problem of an objectId is in it),
 * as repair reads them: a group's problems are ~1/P of the day's.
 */
export async function readProblemFile(store: ObjectStore, file: string): Promise<Problem[]> {
  const out: Problem[] = [];
  for await (const p of problemsOf(store, file)) out.push(p);
  return out;
}
