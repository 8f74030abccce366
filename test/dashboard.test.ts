/**
 * `remora dashboard` as a real process against a day of real pipeline runs (snapshot → unpack →
 * metering, gc, purge on three shards): one shard's live table holds a malformed row (its unpack
 * is degraded), another shard's stored dump is garbage (its unpack is invalid, so metering and
 * gc are blocked). The day before is audited against real storage nodes on loopback, one of
 * whose copies was deleted from its disk (a `missing` problem). Every API answer equals the
 * database or the audit's stored problems; the pages show the same numbers; a non-loopback bind
 * refuses without the operator token — also to a request on 127.0.0.1. The usage page and
 * `remora usage show --json` equal the summary files as stored (DAY's degraded, the day before's
 * complete once rerun after its hours committed).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { RunGrid, RunPage } from '../src/pipeline/views.js';
import type { NodesView } from '../src/deployment/views/nodes.js';
import type { GcView } from '../src/deployment/views/gc.js';
import type { RebalanceView } from '../src/deployment/views/rebalance.js';
import type { RunRow } from '../src/pipeline/runs.repository.js';
import type { AuditView } from '../src/deployment/views/audit.js';
import type { CruftView } from '../src/deployment/views/cruft.js';
import type { CruftDay } from '../src/jobs/cruft/cruft.service.js';
import type { AuditOutput } from '../src/jobs/audit/audit.job.js';
import type { Problem } from '../src/jobs/audit/audit.rules.js';
import { ensureInternalToken } from '../src/deployment/context.js';
import { storageRoot } from '../src/deployment/deployment.js';
import { StorageNode } from '../src/storage/storage-node.js';
import { storeDumps } from './helpers/pipeline-cli.js';
import type { UsageView } from '../src/deployment/views/usage.js';
import { addDays, daysBetween } from '../src/core/days.js';
import { listAccounts } from '../src/frontdoor/accounts.js';
import { readObjectText } from '../src/objectstore/object-store.js';
import { operatorSummaryPath } from '../src/jobs/usage-summary/usage-summary.rules.js';
import { withDailyPipeline } from '../src/jobs/catalog.js';
import { applyRetention } from '../src/pipeline/operations.js';
import { ManualClock } from '../src/core/clock.js';
import type { CliFixture } from './helpers/pipeline-cli.js';
import {
  DASHBOARD_CLOCK,
  DASHBOARD_DAY as DAY,
  openDashboardDay,
  startDashboard as start,
} from './helpers/dashboard-day.js';

let f: CliFixture;
let runs: RunRow[];
/** The jobs with a blocked run, from the database (downstream of the invalid unpack). */
const blockedJobs = () => [...new Set(runs.filter((r) => r.state === 'blocked').map((r) => r.job))].sort();

/** The audited day (the day before DAY, whose unpack is invalid and so blocks DAY's audit). */
const AUDIT_DAY = '2024-03-31';
let auditRuns: RunRow[];
const storageNodes: StorageNode[] = [];
/** The copy deleted from its node's disk before the audit, and the files each node kept. */
let deleted: { node: string; objectId: string };
let planted: { node: string; objectId: string; bytes: number };
const filesOn = new Map<string, Set<string>>();

/**
 * Real storage nodes for the configured ids, their disks holding every copy the metadata places
 * on them but one (removed from the disk), their URLs in config.json; then AUDIT_DAY's pipeline
 * (snapshot … manifests, audit) as a process.
 */
async function auditDayWithAMissingCopy(): Promise<void> {
  const token = ensureInternalToken(f.config);
  const urls = new Map<string, string>();
  for (const n of f.config.storage.nodes) {
    const node = await StorageNode.start({
      id: n.id,
      datacenter: n.datacenter,
      root: storageRoot(f.config, n.id),
      internalToken: token,
    });
    storageNodes.push(node);
    urls.set(n.id, node.url);
  }
  const files: { node: string; file: string; objectId: string }[] = [];
  for (const shard of f.tier.indexShards) {
    const r = await shard.pool.query<{ node: string; objectid: string; dir: string }>(
      `SELECT sh->>'manta_storage_id' AS node, objectid,
              COALESCE((_value::json)->>'creator', (_value::json)->>'owner') AS dir
         FROM manta, json_array_elements((_value::json)->'sharks') sh
        WHERE type = 'object' AND pg_input_is_valid(_value, 'json')`,
    );
    for (const row of r.rows) {
      const file = path.join(storageRoot(f.config, row.node), row.dir, row.objectid);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, 'copy');
      files.push({ node: row.node, file, objectId: row.objectid });
    }
  }
  assert.ok(files.length > 1);
  const gone = files[files.length >> 1]!;
  fs.rmSync(gone.file);
  deleted = { node: gone.node, objectId: gone.objectId };
  // A file no record names, older than the cruft margin: what `remora cruft plan` finds.
  const node = f.config.storage.nodes[0]!.id;
  const cruftFile = path.join(storageRoot(f.config, node), crypto.randomUUID(), crypto.randomUUID());
  fs.mkdirSync(path.dirname(cruftFile), { recursive: true });
  fs.writeFileSync(cruftFile, 'cruft!');
  const old = new Date('2024-03-01T00:00:00Z');
  fs.utimesSync(cruftFile, old, old);
  planted = { node, objectId: path.basename(cruftFile), bytes: 6 };
  for (const x of files)
    if (x.file !== gone.file) filesOn.set(x.node, (filesOn.get(x.node) ?? new Set()).add(x.file));

  const cfgFile = path.join(f.stateDir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as { pipeline: Record<string, unknown> };
  fs.writeFileSync(
    cfgFile,
    JSON.stringify({
      ...cfg,
      storage: { nodes: f.config.storage.nodes.map((n) => ({ ...n, url: urls.get(n.id) })) },
      // No deep audit: the files hold no real content; the problems are what is missing.
      pipeline: { ...cfg.pipeline, jobs: { audit: { deepCycleDays: 0 } } },
    }),
  );
  await storeDumps(f.tier, f.store, [AUDIT_DAY]);
  const r = await f.run(['pipeline', 'run', '--date', AUDIT_DAY, '--timeout', '120']);
  auditRuns = await f.runs(AUDIT_DAY);
  assert.equal(auditRuns.find((x) => x.job === 'audit')?.state, 'succeeded', `${r.stdout}\n${r.stderr}`);
}

before(async () => {
  ({ f, runs } = await openDashboardDay());
  await auditDayWithAMissingCopy();
});
after(async () => {
  for (const n of storageNodes) await n.close();
  await f?.close();
});

const startDashboard = (args: string[] = []) => start(f, args);

async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  const r = await fetch(url, { headers });
  assert.equal(r.status, 200, `${url}: ${r.status} ${await r.clone().text()}`);
  return (await r.json()) as T;
}

test('the day has the verdicts the dashboard must show, made by real means', () => {
  const unpack = runs.filter((r) => r.job === 'unpack');
  assert.ok(
    unpack.some((r) => r.state === 'invalid'),
    JSON.stringify(unpack.map((r) => r.state)),
  );
  assert.ok(
    unpack.some((r) => r.verdict === 'degraded'),
    JSON.stringify(unpack.map((r) => r.verdict)),
  );
  assert.equal(runs.find((r) => r.job === 'storage-metering')?.state, 'blocked');
  // Past its (1 ms) deadline the summary ran on what committed, degraded by the missing input.
  const summary = runs.find((r) => r.job === 'usage-summary');
  assert.equal(`${summary?.state} ${summary?.verdict}`, 'succeeded degraded');
});

test('remora dashboard: /api/runs, /api/runs/<id>, nodes, gc, rebalance equal the database; pages show them; SIGTERM exits 0', async () => {
  const { p, url } = await startDashboard();
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const grid = await getJson<RunGrid>(`${url}api/runs?days=3`);
  assert.deepEqual(grid.days, [DAY, '2024-03-31', '2024-03-30'], 'newest first, ending today (the clock)');
  const day = grid.cells[DAY]!;
  for (const job of new Set(runs.map((r) => r.job))) {
    const mine = runs.filter((r) => r.job === job);
    assert.equal(day[job]!.partitions, mine.length, job);
    assert.equal(
      day[job]!.records,
      mine.reduce(
        (n, r) => n + ((r.report?.counters.recordsScanned ?? 0) || (r.report?.counters.processed ?? 0)),
        0,
      ),
      `${job}: records`,
    );
  }
  assert.equal(day.unpack!.cell, 'invalid', 'worst partition first');
  assert.equal(day['storage-metering']!.cell, 'blocked');
  const invalid = runs.find((r) => r.state === 'invalid')!;
  assert.equal(day.unpack!.runId, invalid.id);

  const filtered = await getJson<RunGrid>(`${url}api/runs?days=1&state=blocked`);
  assert.deepEqual(Object.keys(filtered.cells[DAY]!).sort(), blockedJobs());
  const oneJob = await getJson<RunGrid>(`${url}api/runs?days=1&job=unpack`);
  assert.deepEqual(oneJob.jobs, ['unpack']);

  // Run page: the blocked metering run links to the invalid unpack it was blocked by.
  const metering = runs.find((r) => r.job === 'storage-metering')!;
  const mp = await getJson<RunPage>(`${url}api/runs/${metering.id}`);
  assert.deepEqual(
    mp.upstream.map((u) => u.runId),
    [invalid.id],
  );
  assert.equal(mp.rerun.alone, `remora rerun storage-metering --date ${DAY}`);
  assert.equal(mp.rerun.withDownstream, `remora rerun storage-metering --date ${DAY} --downstream`);
  const ip = await getJson<RunPage>(`${url}api/runs/${invalid.id}`);
  assert.deepEqual(ip.run.report?.counters, invalid.report?.counters);
  assert.ok(ip.events.length > 0 && ip.events[0]!.severity === 'fatal', JSON.stringify(ip.events));
  // A succeeded unpack read its snapshot: the upstream link is the snapshot run it read.
  const okUnpack = runs.find((r) => r.job === 'unpack' && r.state === 'succeeded')!;
  const up = await getJson<RunPage>(`${url}api/runs/${okUnpack.id}`);
  const snap = runs.find((r) => r.job === 'snapshot' && r.partitionKey === okUnpack.partitionKey)!;
  assert.deepEqual(
    up.upstream.map((u) => u.runId),
    [snap.id],
  );

  const html = await (await fetch(`${url}runs/${metering.id}`)).text();
  assert.match(html, new RegExp(`href="/runs/${invalid.id}"`));
  assert.match(html, /remora rerun storage-metering --date 2024-04-01 --downstream/);
  const gridHtml = await (await fetch(`${url}runs?days=3`)).text();
  assert.match(gridHtml, new RegExp(`data-day="${DAY}" data-job="unpack" data-cell="invalid"`));
  assert.doesNotMatch(gridHtml, /https?:\/\/(?!127\.0\.0\.1)/, 'nothing from another host');

  const nodes = await getJson<NodesView>(`${url}api/nodes`);
  assert.deepEqual(
    nodes.datacenters.flatMap((d) => d.nodes.map((n) => n.id)).sort(),
    f.config.storage.nodes.map((n) => n.id).sort(),
  );
  const truth = new Map<string, Set<string>>();
  for (const shard of f.tier.indexShards) {
    const r = await shard.pool.query<{ node: string; objectid: string }>(
      `SELECT sh->>'manta_storage_id' AS node, objectid
         FROM manta, json_array_elements((_value::json)->'sharks') sh
        WHERE type = 'object' AND pg_input_is_valid(_value, 'json')`,
    );
    for (const row of r.rows) {
      const set = truth.get(row.node) ?? new Set<string>();
      truth.set(row.node, set.add(row.objectid));
    }
  }
  assert.ok(truth.size > 0);
  const all = nodes.datacenters.flatMap((d) => d.nodes);
  for (const [node, ids] of truth) assert.equal(all.find((x) => x.id === node)!.copies, ids.size, node);
  assert.ok(
    all.every((n) => !n.writesEnabled && n.writesDisabledBecause === 'no heartbeat'),
    'no node beats here: the front door would write to none',
  );
  const gc = await getJson<GcView>(`${url}api/gc`);
  assert.equal(gc.latest?.day, AUDIT_DAY, "DAY's gc was blocked: the latest committed is the day before's");
  const rb = await getJson<RebalanceView>(`${url}api/rebalance`);
  assert.deepEqual(rb, { jobs: [], job: null });
  for (const pth of ['nodes', 'gc', 'rebalance', 'audit', 'cruft', 'usage']) {
    const r = await fetch(`${url}${pth}`);
    assert.equal(r.status, 200, pth);
  }
  const usageHtml = await (await fetch(`${url}usage`)).text();
  assert.doesNotMatch(usageHtml, /Not yet available/);
  assert.match(usageHtml, new RegExp(`<b data-summary-day>${DAY}</b>`), "the day's (degraded) summary");

  // Input errors: named, with the catalog's status.
  const bad = await fetch(`${url}api/runs?state=purple`);
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { code: string }).code, 'BadRequest');
  assert.equal((await fetch(`${url}api/runs/999999`)).status, 404);
  assert.equal((await fetch(`${url}api/runs`, { method: 'POST' })).status, 405);

  const exit = await p.stop('SIGTERM');
  assert.equal(exit.code, 0, exit.stderr);
});

test('audit: /api/audit and the page equal the stored problems (`remora audit show --json`), the deleted copy among them; nodes show their manifest and problems', async () => {
  const audit = auditRuns.find((r) => r.job === 'audit')!;
  const show = await f.run(['--json', 'audit', 'show', '--date', AUDIT_DAY]);
  assert.equal(show.code, 0, show.stderr);
  const stored = JSON.parse(show.stdout) as AuditOutput & { runId: number; problemList: Problem[] };
  assert.ok(
    stored.problemList.some(
      (p) => p.kind === 'missing' && p.objectId === deleted.objectId && p.node === deleted.node,
    ),
    JSON.stringify(stored.problemList),
  );
  const tally = (key: (p: Problem) => string) => {
    const m: Record<string, number> = {};
    for (const p of stored.problemList) m[key(p)] = (m[key(p)] ?? 0) + 1;
    return m;
  };

  const { p, url } = await startDashboard();
  const a = await getJson<AuditView>(`${url}api/audit`);
  assert.equal(a.latest?.day, AUDIT_DAY, "the latest committed audit (DAY's is blocked)");
  assert.equal(a.latest.runId, audit.id);
  assert.equal(a.latest.output.problems, stored.problemList.length);
  assert.deepEqual(
    a.latest.output.byKind,
    tally((x) => x.kind),
  );
  assert.deepEqual(
    a.latest.output.byNode,
    tally((x) => x.node),
  );
  assert.deepEqual(a.problems, stored.problemList.slice(0, a.limit));
  let copies = 0;
  let records = 0;
  for (const shard of f.tier.indexShards) {
    const r = await shard.pool.query<{ n: string; c: string }>(
      `SELECT count(*) AS n, COALESCE(sum(json_array_length((_value::json)->'sharks')), 0) AS c
         FROM manta WHERE type = 'object' AND pg_input_is_valid(_value, 'json')`,
    );
    records += Number(r.rows[0]!.n);
    copies += Number(r.rows[0]!.c);
  }
  assert.equal(a.latest.output.recordsChecked, records, 'every object record was checked');
  assert.equal(a.latest.output.copiesChecked, copies, 'every copy in the metadata was checked');
  assert.equal((await getJson<AuditView>(`${url}api/audit?date=${AUDIT_DAY}`)).latest?.runId, audit.id);

  const one = await getJson<AuditView>(`${url}api/audit?limit=1`);
  assert.equal(one.problems.length, 1);
  assert.deepEqual((await getJson<AuditView>(`${url}api/audit?limit=0`)).problems, []);
  const html = await (await fetch(`${url}audit?limit=0`)).text();
  assert.match(html, new RegExp(`href="/runs/${audit.id}"`));
  assert.match(html, new RegExp(`<span data-problems>${stored.problemList.length}</span>`));
  assert.match(html, new RegExp(`<span data-copies-checked>${copies}</span>`));
  assert.match(html, new RegExp(`<span data-records-checked>${records}</span>`));
  assert.match(html, new RegExp(`the first 0 of <b>${stored.problemList.length}</b>`));
  const full = await (await fetch(`${url}audit`)).text();
  assert.ok(full.includes(deleted.objectId), 'the deleted copy is listed');
  assert.doesNotMatch(full, /Not yet available/);

  const nodes = (await getJson<NodesView>(`${url}api/nodes`)).datacenters.flatMap((d) => d.nodes);
  const manifests = auditRuns.filter((r) => r.job === 'manifests');
  for (const n of nodes) {
    const run = manifests.find((r) => r.partitionKey === `${AUDIT_DAY}/node=${n.id}`)!;
    const dayRun = runs.find((r) => r.job === 'manifests' && r.partitionKey === `${DAY}/node=${n.id}`)!;
    assert.ok(n.manifest && 'runId' in n.manifest, n.id);
    assert.equal(n.manifest.runId, run.id, `${n.id}: the latest manifest that listed it`);
    assert.equal(n.manifest.day, AUDIT_DAY);
    assert.deepEqual(n.manifest.notReached, { day: DAY, runId: dayRun.id }, `${n.id}: DAY's had no address`);
    const root = storageRoot(f.config, n.id);
    const onDisk = fs
      .readdirSync(root, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && !path.relative(root, e.parentPath).startsWith('tombstone')).length;
    assert.equal(
      n.manifest.files,
      onDisk,
      `${n.id}: files on its disk (${filesOn.get(n.id)?.size ?? 0} written)`,
    );
    assert.equal(n.auditProblems, stored.byNode[n.id] ?? 0, n.id);
  }
  const nodesHtml = await (await fetch(`${url}nodes`)).text();
  assert.match(nodesHtml, new RegExp(`data-audit-problems>${stored.byNode[deleted.node]}<`));

  for (const [q, code] of [
    ['date=junk', 'BadRequest'],
    ['limit=-1', 'BadRequest'],
    ['date=2024-01-01', 'UsageError'],
  ] as const) {
    const r = await fetch(`${url}api/audit?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(((await r.json()) as { code: string }).code, code, q);
  }
  assert.equal((await p.stop('SIGTERM')).code, 0);
});

test('cruft: /api/cruft shows `remora cruft plan` (candidates per node, the planted file as the example) and no daily run', async () => {
  const plan = await f.run(['--json', 'cruft', 'plan', '--date', AUDIT_DAY]);
  assert.equal(plan.code, 0, plan.stderr);
  const pj = JSON.parse(plan.stdout) as CruftDay;
  assert.equal(pj.report.counters.candidates, 1, plan.stdout);
  const { p, url } = await startDashboard();
  const v = await getJson<CruftView>(`${url}api/cruft`);
  assert.equal(v.enabledDaily, false);
  assert.deepEqual(v.runs, []);
  assert.equal(v.onDemand.length, 1);
  const d = v.onDemand[0]!;
  assert.equal(d.kind, 'plan');
  assert.equal(d.day, AUDIT_DAY);
  assert.ok(pj.planPrefix.includes(`/${d.at}/`), `${pj.planPrefix} names ${d.at}`);
  assert.equal(d.candidates, pj.report.counters.candidates);
  assert.deepEqual(d.nodes, [{ node: planted.node, files: 1, bytes: planted.bytes }]);
  assert.equal(d.examples[0]?.objectId, planted.objectId);
  // Every listed file by class, as the command printed it, and the count it confirmed.
  assert.deepEqual(d.classes, pj.nodes);
  assert.equal(d.confirmed, pj.report.counters.cruftFiles);
  assert.equal(d.confirmed, 1);
  const mine = pj.nodes.find((n) => n.node === planted.node)!;
  assert.equal(mine.cruft.files, 1);
  const html = await (await fetch(`${url}cruft`)).text();
  assert.match(html, /<b data-candidates>1<\/b>/);
  assert.match(html, /<b data-confirmed>1<\/b> confirmed/);
  for (const n of pj.nodes)
    for (const [cls, c] of [
      ['listed', n.listed],
      ['live', n.live],
      ['gcPending', n.gcPending],
      ['tooNew', n.tooNew],
      ['cruft', n.cruft],
    ] as const)
      assert.match(
        html,
        new RegExp(`data-class="${cls}" data-node="${n.node.replace(/\./g, '\\.')}">${c.files} \\(`),
        `${n.node} ${cls}`,
      );
  assert.ok(html.includes(planted.objectId));
  assert.doesNotMatch(html, /Not yet available/);
  assert.equal((await p.stop('SIGTERM')).code, 0);
});

test('a non-loopback bind: refused to start without an operator token; with one, nothing answers without it (127.0.0.1 included)', async () => {
  const refused = await f.run(['dashboard', '--port', '0', '--bind', '0.0.0.0']);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /UsageError: --bind 0\.0\.0\.0 is not a loopback address.*operator token/);

  const token = 'dashboard-test-operator-token-0123456789';
  fs.writeFileSync(path.join(f.stateDir, 'operator-token'), `${token}\n`, { mode: 0o600 });
  try {
    const { p, url } = await startDashboard(['--bind', '0.0.0.0']);
    const port = new URL(url).port;
    const local = `http://127.0.0.1:${port}/`;
    for (const pth of ['api/runs', 'api/nodes', 'api/gc', 'api/rebalance', `api/runs/${runs[0]!.id}`]) {
      const r = await fetch(`${local}${pth}`);
      assert.equal(r.status, 401, pth);
      const wrong = await fetch(`${local}${pth}`, {
        headers: { Authorization: 'Token wrong-token-wrong-token' },
      });
      assert.equal(wrong.status, 401, pth);
    }
    for (const pth of ['runs', 'nodes', 'gc', 'rebalance', 'usage', `runs/${runs[0]!.id}`]) {
      const r = await fetch(`${local}${pth}`, { redirect: 'manual' });
      assert.equal(r.status, 303, pth);
      assert.equal(r.headers.get('location'), '/login');
    }
    const ok = await getJson<RunGrid>(`${local}api/runs?days=1`, { Authorization: `Token ${token}` });
    assert.ok(ok.cells[DAY]);
    // The login form: a wrong token is refused, the right one sets a cookie that opens the pages.
    const no = await fetch(`${local}login`, {
      method: 'POST',
      body: new URLSearchParams({ token: 'nope' }),
      redirect: 'manual',
    });
    assert.equal(no.status, 401);
    const yes = await fetch(`${local}login`, {
      method: 'POST',
      body: new URLSearchParams({ token }),
      redirect: 'manual',
    });
    assert.equal(yes.status, 303);
    const cookie = yes.headers.get('set-cookie')!.split(';')[0]!;
    assert.ok(!cookie.includes(token), 'the token itself is not the cookie');
    const page = await fetch(`${local}runs`, { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /data-cell="invalid"/);
    assert.equal((await p.stop('SIGTERM')).code, 0);
  } finally {
    fs.rmSync(path.join(f.stateDir, 'operator-token'));
  }
});

test('dashboard --help and bad flags', async () => {
  const help = await f.run(['dashboard', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--bind <addr>/);
  assert.match(help.stdout, /Authorization: Token/);
  const port = await f.run(['dashboard', '--port', '70000']);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /UsageError: --port: expected an integer from 0 to 65535/);
});

test('--json on the listing commands: runs, run show, pipeline run, rerun, backfill, accounts list, snapshot parse, and equal the database', async () => {
  const clock = DASHBOARD_CLOCK;
  const grid = await f.run(['--json', 'runs', '--days', '2'], clock);
  assert.equal(grid.code, 0, grid.stderr);
  const g = JSON.parse(grid.stdout) as RunGrid;
  assert.deepEqual(g.days, [DAY, '2024-03-31']);
  assert.equal(g.cells[DAY]!.unpack!.cell, 'invalid');
  assert.equal(g.cells[DAY]!.snapshot!.partitions, runs.filter((r) => r.job === 'snapshot').length);
  const blocked = JSON.parse(
    (await f.run(['--json', 'runs', '--days', '1', '--state', 'blocked'], clock)).stdout,
  ) as RunGrid;
  assert.deepEqual(Object.keys(blocked.cells[DAY]!).sort(), blockedJobs());
  const badState = await f.run(['--json', 'runs', '--state', 'purple']);
  assert.equal(badState.code, 2);
  assert.match(badState.stderr, /UsageError: --state: expected one of/);

  const metering = runs.find((r) => r.job === 'storage-metering')!;
  const show = await f.run(['--json', 'run', 'show', String(metering.id)]);
  assert.equal(show.code, 0, show.stderr);
  const sp = JSON.parse(show.stdout) as RunPage;
  assert.equal(sp.run.state, 'blocked');
  assert.deepEqual(
    sp.upstream.map((u) => u.runId),
    [runs.find((r) => r.state === 'invalid')!.id],
  );

  type Line = { id: number; job: string; state: string; verdict: string | null };
  const pr = await f.run(['--json', 'pipeline', 'run', '--date', DAY, '--timeout', '30']);
  assert.equal(pr.code, 1, 'the day still has an invalid run');
  const prj = JSON.parse(pr.stdout) as { days: string[]; runs: Line[] };
  assert.deepEqual(prj.days, [DAY]);
  assert.deepEqual(
    prj.runs.map((r) => `${r.id} ${r.state} ${r.verdict}`).sort(),
    runs.map((r) => `${r.id} ${r.state} ${r.verdict}`).sort(),
  );

  const rr = await f.run(['--json', 'rerun', 'storage-metering', '--date', DAY, '--downstream', '--dry-run']);
  assert.equal(rr.code, 0, rr.stderr);
  const rrj = JSON.parse(rr.stdout) as {
    dryRun: boolean;
    plan: { job: string; action: string }[];
    runs: Line[];
  };
  assert.equal(rrj.dryRun, true);
  assert.deepEqual(
    rrj.plan.map((p) => `${p.job} ${p.action}`),
    // The day's usage summary is downstream too: it ran without storage metering, so it reruns.
    ['storage-metering run', 'usage-summary run'],
  );
  assert.deepEqual(rrj.runs, []);

  const bf = await f.run(['--json', 'backfill', '--from', DAY, '--to', DAY], clock);
  assert.equal(bf.code, 1, 'the day still has an invalid run');
  const bfj = JSON.parse(bf.stdout) as { backfill: { day: string; created: number }[]; runs: Line[] };
  assert.deepEqual(bfj.backfill, [{ day: DAY, created: 0 }], 'a day already run is not run again');
  // On the fixture's clock the day has not ended: its usage summary is not due, so backfill
  // neither waits for it nor returns it (driveDays, src/pipeline/operations.ts).
  assert.equal(bfj.runs.length, runs.filter((r) => r.job !== 'usage-summary').length);

  const acc = await f.run(['--json', 'accounts', 'list']);
  assert.equal(acc.code, 0, acc.stderr);
  const accounts = JSON.parse(acc.stdout) as { login: string; reports: boolean; operator: boolean }[];
  assert.deepEqual(accounts.map((a) => a.login).sort(), ['alice', 'bob', 'carol']);
  assert.equal(accounts.find((a) => a.login === 'carol')!.reports, false);

  const snap = await f.run(['--json', 'snapshot', '--shard', f.tier.indexShards[0]!.name]);
  assert.equal(snap.code, 0, snap.stderr);
  const sj = JSON.parse(snap.stdout) as { shard: string; tables: Record<string, number>; path: string }[];
  assert.equal(sj.length, 1);
  assert.equal(sj[0]!.shard, f.tier.indexShards[0]!.name);
  const rows = await f.tier.indexShards[0]!.pool.query<{ n: string }>('SELECT count(*) AS n FROM manta');
  assert.equal(sj[0]!.tables.manta, Number(rows.rows[0]!.n));
  assert.ok(await f.store.head(sj[0]!.path), 'the dump it names exists');
});

test('logs of long-running commands: JSON lines with REMORA_LOG_FORMAT=json, text by default, a bad format refused', async () => {
  const w = f.start(['worker'], { REMORA_LOG_FORMAT: 'json' });
  await w.waitForLog(/worker started/);
  const stopped = await w.stop('SIGTERM');
  assert.equal(stopped.code, 0, stopped.stderr);
  const lines = stopped.stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(lines.length >= 2, stopped.stderr);
  for (const l of lines) {
    assert.equal(l.level, 'info');
    assert.equal(l.pid, w.child.pid);
    assert.ok(!Number.isNaN(Date.parse(String(l.time))));
  }
  assert.deepEqual(
    lines.map((l) => l.msg).filter((m) => m === 'worker started' || m === 'SIGTERM: stopping'),
    ['worker started', 'SIGTERM: stopping'],
  );
  const t = f.start(['worker']);
  await t.waitForLog(/^\d{4}-\d\d-\d\dT[\d:.]+Z worker started$/m);
  assert.equal((await t.stop('SIGTERM')).code, 0);
  const bad = await f.run(['worker'], { REMORA_LOG_FORMAT: 'yaml' });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /InvalidConfig: REMORA_LOG_FORMAT: expected "text" or "json", got "yaml"/);
});

type SummaryLine = {
  owner: string;
  storageGBHours: string;
  requests: Record<string, string>;
  bandwidthBytes: { in: string; out: string };
  computeGBSeconds: string;
  computeBandwidthBytes: { in: string; out: string };
  missing?: string[];
};

/** A day's summary file as stored (the published operator file), read here apart from the view. */
async function storedSummary(day: string): Promise<SummaryLine[] | undefined> {
  const file = operatorSummaryPath(day);
  if (!(await f.store.head(file))) return undefined;
  return (await readObjectText(f.store, file))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as SummaryLine)
    .sort((a, b) => a.owner.localeCompare(b.owner));
}

const byOwner = (rows: UsageView['table']['rows']) =>
  rows.map(({ account: _, ...r }) => r).sort((a, b) => a.owner.localeCompare(b.owner));

/** The charted value of a stored line, computed here: requests are summed over the operations. */
function metricOf(l: SummaryLine, m: string): string {
  if (m === 'requests')
    return Object.values(l.requests)
      .reduce((n, x) => n + BigInt(x), 0n)
      .toString();
  if (m === 'bandwidthIn') return l.bandwidthBytes.in;
  if (m === 'bandwidthOut') return l.bandwidthBytes.out;
  return m === 'storageGBHours' ? l.storageGBHours : l.computeGBSeconds;
}

test('usage: /api/usage, the page and `remora usage show --json` equal the stored summary files (a degraded day, a complete day, gaps as null); bad parameters named', async (t) => {
  // AUDIT_DAY's summary ran past its deadline before its hours had committed; rerun now that they
  // have (storage metering included), it is complete and has every account's storage.
  const rr = await f.run(['rerun', 'usage-summary', '--date', AUDIT_DAY]);
  // Exit 1 when the day holds another invalid run: the repair of the fixture's synthetic records,
  // whose copies were never written, finds them lost. The summary's own run is what is checked.
  assert.ok(rr.code === 0 || rr.code === 1, rr.stderr);
  const summaryRun = (await f.runs(AUDIT_DAY))
    .filter((r) => r.job === 'usage-summary')
    .sort((a, b) => b.id - a.id)[0]!;
  assert.equal(`${summaryRun.state} ${summaryRun.verdict}`, 'succeeded ok');
  const complete = (await storedSummary(AUDIT_DAY))!;
  assert.ok(complete.length > 0 && complete.some((l) => l.storageGBHours !== '0'), JSON.stringify(complete));
  assert.ok(complete.every((l) => l.missing === undefined));
  const logins = new Map((await listAccounts(f.tier)).map((a) => [a.uuid, a.login]));

  const { p, url } = await startDashboard();
  // Default: the 30 days ending today (the clock's DAY); the table is the newest summarized day.
  const v = await getJson<UsageView>(`${url}api/usage`);
  assert.deepEqual(v.days, daysBetween(addDays(DAY, -29), DAY));
  for (const [i, d] of v.days.entries())
    assert.equal(v.summaries[i] === null, (await storedSummary(d)) === undefined, `${d}: a gap iff no file`);
  assert.ok(
    v.summaries.some((s) => s === null),
    'some days have no summary',
  );
  assert.equal(v.date, DAY);
  // The newest of DAY's summary runs (a later `pipeline run` reran it once its hours committed).
  const daySummary = (await f.runs(DAY))
    .filter((r) => r.job === 'usage-summary' && r.state === 'succeeded')
    .sort((x, y) => y.id - x.id)[0]!;
  assert.equal(v.table.summary?.runId, daySummary.id);
  assert.equal(v.table.summary.verdict, 'degraded');
  assert.ok(v.table.summary.missing.includes(`storage-metering ${DAY}`), JSON.stringify(v.table.summary));
  assert.deepEqual(byOwner(v.table.rows), (await storedSummary(DAY))!);

  // The complete day: rows = the file, accounts by login; every series point = the file of its day.
  const a = await getJson<UsageView>(`${url}api/usage?date=${AUDIT_DAY}&days=7`);
  assert.deepEqual(a.days, daysBetween(addDays(AUDIT_DAY, -6), AUDIT_DAY));
  assert.equal(a.date, AUDIT_DAY);
  assert.equal(a.table.summary?.runId, summaryRun.id);
  assert.equal(a.table.summary.verdict, 'ok');
  assert.deepEqual(a.table.summary.missing, []);
  assert.deepEqual(byOwner(a.table.rows), complete);
  for (const r of a.table.rows) assert.equal(r.account, logins.get(r.owner) ?? r.owner);
  assert.deepEqual(
    a.accounts.map((x) => x.owner).sort(),
    complete.map((l) => l.owner),
  );
  const stored = await Promise.all(a.days.map((d) => storedSummary(d)));
  for (const acc of a.accounts)
    for (const [m, series] of Object.entries(acc.series))
      series.forEach((value, i) => {
        const file = stored[i];
        const line = file?.find((l) => l.owner === acc.owner);
        const want = !file ? null : line ? metricOf(line, m) : '0';
        assert.equal(value, want, `${acc.account} ${m} ${a.days[i]}`);
      });
  const alice = await getJson<UsageView>(`${url}api/usage?date=${AUDIT_DAY}&account=alice`);
  assert.deepEqual(
    alice.accounts.map((x) => x.account),
    ['alice'],
  );
  assert.deepEqual(
    alice.table.rows.map((r) => r.account),
    ['alice'],
  );

  // The page: the day's numbers as stored, a chart per account and metric, gaps marked.
  const html = await (await fetch(`${url}usage?date=${AUDIT_DAY}&days=7`)).text();
  for (const r of a.table.rows) {
    const fields: [string, string][] = [
      ['storageGBHours', r.storageGBHours],
      ...Object.entries(r.requests).map(([op, n]): [string, string] => [`requests.${op}`, n]),
      ['bandwidthBytes.in', r.bandwidthBytes.in],
      ['bandwidthBytes.out', r.bandwidthBytes.out],
      ['computeGBSeconds', r.computeGBSeconds],
    ];
    for (const [field, n] of fields)
      assert.match(
        html,
        new RegExp(`data-usage="${field}" data-account="${r.account}">${BigInt(n).toLocaleString('en-US')}<`),
        `${r.account} ${field}`,
      );
  }
  assert.equal(html.match(/<svg class="chart"/g)?.length, a.accounts.length * 5);
  assert.match(html, /data-gap/);
  assert.doesNotMatch(html, /https?:\/\/(?!127\.0\.0\.1)/, 'nothing from another host');
  assert.match(await (await fetch(`${url}usage`)).text(), /<p class="bad" data-missing="\d+">Incomplete/);

  for (const [q, code] of [
    ['days=abc', 'BadRequest'],
    ['days=0', 'BadRequest'],
    ['days=367', 'BadRequest'],
    ['date=2024-13-01', 'BadRequest'],
    ['account=nobody', 'UsageError'],
  ] as const) {
    const r = await fetch(`${url}api/usage?${q}`);
    assert.equal(r.status, 400, q);
    const e = (await r.json()) as { code: string; message: string };
    assert.equal(e.code, code, q);
    assert.match(e.message, new RegExp(`^${q.split('=')[0]}: `), q);
  }
  // The most days a request may ask for: one pointer and one file read a day (a figure, not a bench).
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const year = await getJson<UsageView>(`${url}api/usage?days=366`);
    times.push(performance.now() - t0);
    assert.equal(year.days.length, 366);
  }
  const t0 = performance.now();
  const yearPage = await (await fetch(`${url}usage?days=366`)).text();
  t.diagnostic(
    `/api/usage?days=366: median ${times.sort((x, y) => x - y)[1]!.toFixed(0)} ms; /usage?days=366 ${(performance.now() - t0).toFixed(0)} ms, ${Math.round(yearPage.length / 1024)} KiB`,
  );
  const badPage = await fetch(`${url}usage?date=2024-13-01`);
  assert.equal(badPage.status, 400);
  assert.match(await badPage.text(), /BadRequest/);
  assert.equal((await p.stop('SIGTERM')).code, 0);

  // The CLI listing: the same document.
  const cli = await f.run(['--json', 'usage', 'show', '--date', AUDIT_DAY, '--days', '7']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.deepEqual(JSON.parse(cli.stdout), a);
  const cliDefault = await f.run(['--json', 'usage', 'show'], DASHBOARD_CLOCK);
  assert.deepEqual(JSON.parse(cliDefault.stdout), v);
  const text = await f.run(['usage', 'show', '--date', AUDIT_DAY]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`usage summary ${AUDIT_DAY} \\(run ${summaryRun.id}, ok`));
  const aliceLine = complete.find((l) => logins.get(l.owner) === 'alice')!;
  assert.match(text.stdout, new RegExp(`^alice +${aliceLine.storageGBHours} `, 'm'));
  for (const [args, re] of [
    [['--days', 'abc'], /UsageError: --days: expected an integer from 1 to 366/],
    [['--date', '2024-13-01'], /UsageError: --date: not a calendar day/],
    [['--account', 'nobody'], /UsageError: account: no account "nobody"/],
  ] as const) {
    const r = await f.run(['usage', 'show', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, re);
  }
  const help = await f.run(['usage', 'show', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--date <day>[\s\S]*--days <N>[\s\S]*--account <login>/);
  // A day without a summary asked for: the table says so (the charts still show the days).
  const none = JSON.parse(
    (await f.run(['--json', 'usage', 'show', '--date', '2024-04-02'])).stdout,
  ) as UsageView;
  assert.equal(none.date, '2024-04-02');
  assert.equal(none.table.summary, null);
  assert.deepEqual(none.table.rows, []);
  assert.equal(none.summaries.at(-3)?.runId, summaryRun.id, 'AUDIT_DAY, two days before');

  // Last, as it forgets runs: the real run retention, a month on, removes AUDIT_DAY's runs and
  // their own copies; its published summary file still answers (no run, no verdict), DAY's run too.
  const later = '2024-05-01';
  const removed = await withDailyPipeline(
    f.config,
    f.tier,
    {
      log: () => {},
      store: f.store,
      clock: new ManualClock(Date.parse(`${later}T12:00:00Z`)),
      worker: false,
    },
    (rt) => applyRetention(rt, later),
  );
  assert.ok(removed > 0);
  assert.equal(await f.store.head(a.table.summary.path), undefined, "the run's own copy is gone");
  const kept = JSON.parse(
    (await f.run(['--json', 'usage', 'show', '--date', DAY, '--days', '2'])).stdout,
  ) as UsageView;
  const [old, current] = kept.summaries;
  assert.deepEqual(old, {
    day: AUDIT_DAY,
    source: 'published',
    runId: null,
    verdict: null,
    path: operatorSummaryPath(AUDIT_DAY),
    missing: [],
    accounts: complete.length,
  });
  assert.equal(current?.source, 'run');
  for (const x of kept.accounts)
    assert.equal(
      x.series.storageGBHours[0],
      complete.find((l) => l.owner === x.owner)?.storageGBHours ?? '0',
      x.account,
    );
  assert.ok(complete.every((l) => kept.accounts.some((x) => x.owner === l.owner)));
});
