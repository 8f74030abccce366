/**
 * Dashboard benchmark (issue 15): a year of history — 365 days × every job of the daily pipeline
 * × its partitions (snapshot and unpack per shard, tombstone-purge per node, compute-metering per
 * hour: 38 runs a day on the default 3 shards + 6 nodes), each with a report carrying counters, phases and events with five
 * examples (about 2 KB, like a real run's) — and the runs page must still answer in well under a
 * second.
 *
 * History is written through the runs repository (createRun, then transitionRun to its end
 * state: about one run in twenty degraded, one in a hundred invalid with its downstream blocked),
 * not by running the pipeline 365 times. Timed over HTTP against a DashboardServer on loopback,
 * each request REPEAT times, median and worst printed: `/runs` (the default page of 14 days) as
 * HTML and JSON, an old page (days 300–313), the whole year as one page, a job filter, a state
 * filter, and one run's page. Baseline in the same run: the static style sheet (the server's floor).
 *
 *   REMORA_BENCH=dashboard npm run bench
 *   REMORA_BENCH_DASHBOARD_DAYS=365   days of history
 */
import { ensureBenchPostgres } from './support.js';
import { addDays } from '../src/core/days.js';
import { ReportBuilder } from '../src/core/run-report.js';
import { eachLimit } from '../src/core/concurrency.js';

const DAYS = Number(process.env.REMORA_BENCH_DASHBOARD_DAYS ?? 365);
const REPEAT = 7;
const TODAY = '2025-06-30';

async function timeGet(url: string): Promise<{ median: number; worst: number; bytes: number }> {
  const ms: number[] = [];
  let bytes = 0;
  await (await fetch(url)).text(); // warm: connection, plan cache
  for (let i = 0; i < REPEAT; i++) {
    const t0 = performance.now();
    const r = await fetch(url);
    const body = await r.text();
    ms.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`${url}: ${r.status} ${body.slice(0, 200)}`);
    bytes = body.length;
  }
  ms.sort((a, b) => a - b);
  return { median: ms[Math.floor(ms.length / 2)]!, worst: ms.at(-1)!, bytes };
}

function report(i: number, degraded: boolean, invalid: boolean) {
  const b = new ReportBuilder();
  b.count('recordsScanned', 10_000 + i)
    .count('processed', 9_990 + i)
    .count('bytesRead', 1_000_000 + i);
  for (const kind of ['malformed-record', 'unknown-namespace', 'late-delete'])
    for (let e = 0; e < 5; e++)
      b.event(kind, invalid ? 'fatal' : degraded ? 'warning' : 'info', {
        key: `/acct/stor/obj-${i}-${e}`,
        n: e,
      });
  const done = b.phase('scan');
  done();
  return b.finish();
}

export default async function main(): Promise<void> {
  const stopPg = await ensureBenchPostgres();
  const { openTestTier, testConfig } = await import('../test/helpers/pg.js');
  const { withDailyPipeline } = await import('../src/jobs/catalog.js');
  const { createRun, transitionRun } = await import('../src/pipeline/runs.repository.js');
  const { partitionsFor } = await import('../src/pipeline/partitions.js');
  const { DashboardServer } = await import('../src/web/server.js');
  const { ManualClock } = await import('../src/core/clock.js');
  const { tier, config, cleanup } = await openTestTier(testConfig());
  try {
    const clock = new ManualClock(Date.parse(`${TODAY}T12:00:00Z`));
    await withDailyPipeline(config, tier, { log: () => {}, worker: false, clock }, async (rt) => {
      const t0 = Date.now();
      let n = 0;
      let firstId = 0;
      const from = addDays(TODAY, -(DAYS - 1));
      for (let d = from; d <= TODAY; d = addDays(d, 1)) {
        let blocked = false;
        for (const job of rt.graph.names()) {
          const parts = partitionsFor(rt.graph.get(job), d, rt.topology);
          const dayBlocked = blocked;
          // The partitions of a job side by side (each its own advisory lock), jobs in order.
          await eachLimit(parts, 8, async (p) => {
            const id = (await createRun(
              rt.control,
              {
                job,
                partitionKey: p.key,
                day: d,
                trigger: 'schedule',
                deadlineMs: 86_400_000,
                now: Date.now(),
              },
              'once',
            ))!;
            firstId = firstId === 0 ? id : Math.min(firstId, id);
            const i = ++n;
            const invalid = job === 'unpack' && i % 97 === 0;
            const degraded = i % 19 === 0;
            await transitionRun(rt.control, id, ['waiting'], 'running', { started: true });
            if (dayBlocked && rt.graph.upstreamOf(job).length > 0) {
              await transitionRun(rt.control, id, ['running'], 'blocked', {
                error: 'input blocked',
                finished: true,
              });
              return;
            }
            await transitionRun(rt.control, id, ['running'], invalid ? 'invalid' : 'succeeded', {
              verdict: invalid ? 'invalid' : degraded ? 'degraded' : 'ok',
              report: report(i, degraded, invalid),
              finished: true,
            });
            if (invalid) blocked = true;
          });
        }
      }
      const size = await rt.control.query<{ b: string }>(
        `SELECT pg_total_relation_size('remora_pipeline.runs') AS b`,
      );
      process.stdout.write(
        `history: ${n.toLocaleString('en-US')} runs over ${DAYS} days (${n / DAYS} a day), runs table ${(Number(size.rows[0]!.b) / 1e6).toFixed(1)} MB, written in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
      );
      const server = await DashboardServer.start({ rt, bind: '127.0.0.1', port: 0 });
      try {
        const u = server.url;
        const cases: [string, string][] = [
          ['baseline: /static/dashboard.css', `${u}static/dashboard.css`],
          ['/runs (14 days, HTML)', `${u}runs`],
          ['/api/runs (14 days, JSON)', `${u}api/runs`],
          ['/runs?page=21 (days 295–308 back)', `${u}runs?page=21`],
          [`/runs?days=${DAYS} (the whole history, one page)`, `${u}runs?days=${DAYS}`],
          ['/runs?job=unpack&days=90', `${u}runs?job=unpack&days=90`],
          ['/runs?state=invalid&days=365', `${u}runs?state=invalid&days=365`],
          [`/runs/${firstId} (one run)`, `${u}runs/${firstId}`],
        ];
        const base = await timeGet(cases[0]![1]);
        for (const [label, url] of cases) {
          const t = label.startsWith('baseline') ? base : await timeGet(url);
          process.stdout.write(
            `  ${label.padEnd(48)} median ${t.median.toFixed(1).padStart(7)} ms  worst ${t.worst.toFixed(1).padStart(7)} ms  ` +
              `${(t.bytes / 1024).toFixed(0).padStart(5)} KiB  ×${(t.median / base.median).toFixed(1)} baseline\n`,
          );
        }
      } finally {
        await server.close();
      }
    });
  } finally {
    await cleanup();
    await stopPg();
  }
}
