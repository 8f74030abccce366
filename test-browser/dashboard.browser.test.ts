/**
 * The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core, against
 * `remora dashboard` as a process on a day of real pipeline runs (test/helpers/dashboard-day.ts:
 * one degraded, one invalid, two blocked) and two rebalance jobs, one finished and one running.
 *
 * The rebalance jobs are written through the rebalance repository (insertJob, insertObjects, and
 * claimObjects + recordOutcomes to advance the running one), not by a real evacuation: a real run
 * finishes in well under the time a browser needs to watch it advance. Everything else is real.
 *
 * The usage page is checked on the day's degraded summary and on the day before's, run whole for
 * it (its summary rerun once its hours committed, so complete).
 *
 * Any request the page makes to another address than the dashboard's own fails the test.
 * Screenshots of every page go to test-browser/screenshots/ (REMORA_SCREENSHOTS overrides).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { RunRow } from '../src/pipeline/runs.repository.js';
import type { CliFixture, CliProcess } from '../test/helpers/pipeline-cli.js';
import { DASHBOARD_DAY as DAY, openDashboardDay, startDashboard } from '../test/helpers/dashboard-day.js';
import { storeDumps } from '../test/helpers/pipeline-cli.js';
import { addDays } from '../src/core/days.js';
import { listAccounts } from '../src/frontdoor/accounts.js';
import { readObjectText } from '../src/objectstore/object-store.js';
import { operatorSummaryPath } from '../src/jobs/usage-summary/usage-summary.rules.js';
import {
  claimObjects,
  insertJob,
  insertObjects,
  migrateRebalance,
  recordOutcomes,
  type NewObjectRow,
} from '../src/jobs/rebalance/rebalance.repository.js';

const SHOTS = process.env.REMORA_SCREENSHOTS ?? path.join(import.meta.dirname, 'screenshots');
const CHROMIUM = process.env.REMORA_CHROMIUM ?? '/usr/bin/chromium';

let f: CliFixture;
let runs: RunRow[];
/** The jobs with a blocked run, from the database (downstream of the invalid unpack). */
const blockedJobs = () => [...new Set(runs.filter((r) => r.state === 'blocked').map((r) => r.job))].sort();
let dash: { p: CliProcess; url: string };
let browser: Browser;
/** Requests to any other origin than the dashboard's, from every page of the run. */
const foreign: string[] = [];

/** The day before DAY: run whole in the usage test, for a complete usage summary. */
const DAY_BEFORE = addDays(DAY, -1);
type StoredLine = {
  owner: string;
  storageGBHours: string;
  requests: Record<string, string>;
  bandwidthBytes: { in: string; out: string };
  computeGBSeconds: string;
  missing?: string[];
};

const RUNNING = 'job-running';
const FINISHED = 'job-finished';

function objects(n: number, prefix: string, state: NewObjectRow['state']): NewObjectRow[] {
  return Array.from({ length: n }, (_, i) => ({
    objectId: `${prefix}-${String(i).padStart(3, '0')}`,
    state,
    reason: null,
    detail: null,
    bytes: 1000 + i,
    md5: 'x',
    copyOwner: 'owner',
    cause: 'evacuate',
    oldShark: { datacenter: 'dc1', manta_storage_id: '1.stor.dc1.remora.local' },
    newShark: { datacenter: 'dc2', manta_storage_id: '2.stor.dc2.remora.local' },
    keys: [],
  }));
}

/** Move `n` objects of a job on: claimed, then complete, or skipped/error with a reason. */
async function advance(
  jobId: string,
  n: number,
  outcome: { state: 'complete' | 'skipped' | 'error'; reason?: string },
) {
  const claimed = await claimObjects(f.tier.control, {
    jobId,
    runner: 'browser-test',
    limit: n,
    leaseMs: 60_000,
    runStartedAt: new Date(),
  });
  await recordOutcomes(
    f.tier.control,
    jobId,
    'browser-test',
    claimed.map((o) => ({
      objectId: o.objectId,
      state: outcome.state,
      skippedKeys: 0,
      ...(outcome.reason ? { reason: outcome.reason, detail: `${outcome.reason} for ${o.objectId}` } : {}),
    })),
  );
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  ({ f, runs } = await openDashboardDay());
  await migrateRebalance(f.tier.control);
  await insertJob(f.tier.control, FINISHED, { evacuate: '3.stor.dc3.remora.local' }, { objects: 5 });
  await insertObjects(f.tier.control, FINISHED, objects(5, 'fin', 'unprocessed'));
  await advance(FINISHED, 5, { state: 'complete' });
  await new Promise((r) => setTimeout(r, 20)); // created_at orders the jobs: the running one is newer
  await insertJob(f.tier.control, RUNNING, { evacuate: '1.stor.dc1.remora.local' }, { objects: 40 });
  await insertObjects(f.tier.control, RUNNING, objects(40, 'run', 'unprocessed'));
  await advance(RUNNING, 10, { state: 'complete' });
  await advance(RUNNING, 3, { state: 'skipped', reason: 'SourceUnavailable' });
  await advance(RUNNING, 2, { state: 'error', reason: 'Md5Mismatch' });
  dash = await startDashboard(f);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update'],
  });
});

after(async () => {
  await browser?.close();
  await f?.close();
});

async function open(url: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const origin = new URL(url).origin;
  page.on('request', (r) => {
    if (new URL(r.url()).origin !== origin) foreign.push(r.url());
  });
  await page.goto(url);
  return page;
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
const text = async (page: Page, sel: string) =>
  ((await page.locator(sel).first().textContent()) ?? '').trim();
const num = (s: string) => Number(s.replace(/,/g, ''));
/** The first fill bar's filled part is `pct` % of the bar, in the rendered page (±1.5 px). */
async function barToScale(page: Page, pct: number, nth = 0): Promise<void> {
  const bar = await page.locator('[data-bar]').nth(nth).boundingBox();
  const fill = await page.locator('[data-bar] [data-bar-fill]').nth(nth).boundingBox();
  assert.ok(bar && bar.width > 0, 'the bar is drawn');
  assert.ok(
    Math.abs((fill?.width ?? 0) - (bar.width * pct) / 100) <= 1.5,
    `bar ${bar.width} px, filled ${fill?.width ?? 0} px, expected ${pct} %`,
  );
}

test('runs grid: every cell of the day equals the database; grid → run → upstream run by clicks', async () => {
  const page = await open(`${dash.url}runs?days=7`);
  await shot(page, 'runs');
  for (const job of new Set(runs.map((r) => r.job))) {
    const mine = runs.filter((r) => r.job === job);
    const cell = page.locator(`td[data-day="${DAY}"][data-job="${job}"]`);
    // The worst partition shows: failed, invalid, blocked, running, waiting, then the verdict.
    const worst = ['failed', 'invalid', 'blocked', 'running', 'waiting']
      .map((s) => mine.find((r) => r.state === s))
      .find(Boolean);
    const expected = worst ? worst.state : mine.some((r) => r.verdict === 'degraded') ? 'degraded' : 'ok';
    assert.equal(await cell.getAttribute('data-cell'), expected, job);
    const records = mine.reduce(
      (n, r) => n + ((r.report?.counters.recordsScanned ?? 0) || (r.report?.counters.processed ?? 0)),
      0,
    );
    assert.equal(
      num(await text(page, `td[data-day="${DAY}"][data-job="${job}"] [data-records]`)),
      records,
      job,
    );
  }
  // grid → the blocked metering run → the invalid unpack run it was blocked by
  const metering = runs.find((r) => r.job === 'storage-metering')!;
  const invalid = runs.find((r) => r.state === 'invalid')!;
  await page.click(`td[data-day="${DAY}"][data-job="storage-metering"] a`);
  await page.waitForURL(`**/runs/${metering.id}`);
  assert.equal(await text(page, '[data-state]'), 'blocked');
  assert.match(await page.content(), /remora rerun storage-metering --date 2024-04-01 --downstream/);
  await shot(page, 'run-blocked');
  await page.click('a.upstream');
  await page.waitForURL(`**/runs/${invalid.id}`);
  assert.equal(await text(page, '[data-state]'), 'invalid');
  for (const [k, v] of Object.entries(invalid.report!.counters))
    assert.equal(num(await text(page, `[data-counter="${k}"]`)), v, k);
  for (const e of Object.values(invalid.report!.events))
    assert.equal(num(await text(page, `[data-event="${e.kind}"]`)), e.count, e.kind);
  await shot(page, 'run-invalid');
  // a degraded unpack → the snapshot run it read
  const degraded = runs.find((r) => r.job === 'unpack' && r.verdict === 'degraded')!;
  await page.goto(`${dash.url}runs/${degraded.id}`);
  assert.equal(await text(page, '[data-verdict]'), 'degraded');
  await page.click('a.upstream');
  const snap = runs.find((r) => r.job === 'snapshot' && r.partitionKey === degraded.partitionKey)!;
  await page.waitForURL(`**/runs/${snap.id}`);
  await shot(page, 'run-upstream');
  // filters: only the blocked cells
  await page.goto(`${dash.url}runs`);
  await page.selectOption('select[name=state]', 'blocked');
  await page.click('form.filters button');
  await page.waitForURL(/state=blocked/);
  const cellsShown = page.locator('td[data-cell]');
  const cells: string[] = [];
  for (let i = 0; i < (await cellsShown.count()); i++)
    cells.push((await cellsShown.nth(i).getAttribute('data-job')) ?? '');
  assert.deepEqual(cells.sort(), blockedJobs());
  await page.close();
});

test('storage nodes, GC, audit, cruft, usage pages open and show the database numbers', async () => {
  const page = await open(`${dash.url}nodes`);
  await shot(page, 'nodes');
  const api = (await (await fetch(`${dash.url}api/nodes`)).json()) as {
    datacenters: { nodes: { id: string; copies: number; percentUsed: number | null }[] }[];
  };
  const shown = await page.locator('[data-copies]').allTextContents();
  assert.deepEqual(
    shown.map(num),
    api.datacenters.flatMap((d) => d.nodes.map((n) => n.copies)),
  );
  assert.ok(shown.map(num).some((n) => n > 0));
  // Each node with a heartbeat: its fill bar to scale with the figure beside it.
  const fills = await page.locator('[data-fill]').allTextContents();
  assert.equal(
    fills.length,
    api.datacenters.flatMap((d) => d.nodes).filter((n) => n.percentUsed !== null).length,
  );
  for (const [i, f] of fills.entries()) await barToScale(page, Math.min(100, num(f.replace('%', ''))), i);
  for (const name of ['gc', 'audit', 'cruft', 'usage']) {
    await page.goto(`${dash.url}${name}`);
    await shot(page, name === 'usage' ? 'usage-degraded' : name);
    assert.equal(await page.locator('[data-not-yet]').count(), 0, name);
  }
  // This day's usage summary ran without its storage metering: the page says which inputs.
  await page.goto(`${dash.url}usage`);
  assert.equal(await text(page, '[data-summary-day]'), DAY);
  assert.ok(num((await page.locator('[data-missing]').getAttribute('data-missing')) ?? '') > 0);
  assert.match(await text(page, '[data-missing]'), new RegExp(`storage-metering ${DAY}`));
  // This day's audit is blocked by the invalid unpack; the pages say so, from the API.
  const audit = (await (await fetch(`${dash.url}api/audit`)).json()) as { latest?: unknown };
  assert.equal(audit.latest, undefined);
  await page.goto(`${dash.url}audit`);
  assert.match(await page.locator('main').innerText(), /no audit has committed/);
  await page.goto(`${dash.url}cruft`);
  assert.match(await page.locator('main').innerText(), /no remora cruft plan \| run yet/);

  // A complete usage summary: the day before, run whole, its summary rerun once its hours committed.
  await storeDumps(f.tier, f.store, [DAY_BEFORE]);
  await f.run(['pipeline', 'run', '--date', DAY_BEFORE, '--timeout', '120']);
  const rr = await f.run(['rerun', 'usage-summary', '--date', DAY_BEFORE]);
  // Exit 1 when the day holds another invalid run: the repair of the fixture's synthetic records,
  // whose copies were never written, finds them lost. The summary's own run is what is checked.
  assert.ok(rr.code === 0 || rr.code === 1, rr.stderr);
  const stored = (await readObjectText(f.store, operatorSummaryPath(DAY_BEFORE)))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as StoredLine);
  assert.ok(stored.length > 0 && stored.every((l) => l.missing === undefined), JSON.stringify(stored));
  const logins = new Map((await listAccounts(f.tier)).map((a) => [a.uuid, a.login]));
  await page.goto(`${dash.url}usage?date=${DAY_BEFORE}&days=7`);
  await shot(page, 'usage');
  assert.equal(await page.locator('[data-missing]').count(), 0, 'complete');
  for (const l of stored) {
    const acc = logins.get(l.owner) ?? l.owner;
    const shownAs = (field: string) => text(page, `[data-usage="${field}"][data-account="${acc}"]`);
    assert.equal(num(await shownAs('storageGBHours')), Number(l.storageGBHours), `${acc} storage`);
    for (const [op, n] of Object.entries(l.requests))
      assert.equal(num(await shownAs(`requests.${op}`)), Number(n), `${acc} ${op}`);
    assert.equal(num(await shownAs('bandwidthBytes.in')), Number(l.bandwidthBytes.in), `${acc} in`);
    assert.equal(num(await shownAs('bandwidthBytes.out')), Number(l.bandwidthBytes.out), `${acc} out`);
    assert.equal(num(await shownAs('computeGBSeconds')), Number(l.computeGBSeconds), `${acc} compute`);
    // Its storage chart: drawn, the day's bar carrying the stored value.
    const chart = page.locator(`svg.chart[data-chart="storageGBHours"][data-account="${acc}"]`);
    const box = await chart.boundingBox();
    assert.ok(box && box.width > 100 && box.height > 40, `${acc}: chart on screen ${JSON.stringify(box)}`);
    assert.equal(
      await chart.locator(`rect[data-day="${DAY_BEFORE}"]`).getAttribute('data-value'),
      l.storageGBHours,
    );
  }
  assert.equal(await page.locator('svg.chart').count(), stored.length * 5);
  assert.ok((await page.locator('svg.chart rect[data-gap]').count()) > 0, 'days without a summary: gaps');
  await page.close();
});

test('rebalance: jobs listed; the running job advances on screen without a reload; skips by reason with objects', async () => {
  const page = await open(`${dash.url}rebalance`);
  assert.equal(num(await text(page, '[data-done]')), 10);
  assert.equal(num(await text(page, '[data-total]')), 40);
  assert.equal(num(await text(page, '[data-reason="SourceUnavailable"]')), 3);
  assert.match(await page.content(), /Md5Mismatch for run-/);
  // The progress bar is drawn to scale (10 of 40: a quarter), within the Content-Security-Policy
  // (an inline style="width:…" is refused by `style-src 'self'`: the bar stayed empty).
  await barToScale(page, 25);
  await page.evaluate('window.__notReloaded = true');
  await shot(page, 'rebalance-before');
  await advance(RUNNING, 12, { state: 'complete' });
  // The page's own script swaps in fresh figures (polling with a function string would need
  // 'unsafe-eval', which the dashboard's Content-Security-Policy forbids).
  const deadline = Date.now() + 15_000;
  while (num(await text(page, '[data-done]')) !== 22) {
    assert.ok(Date.now() < deadline, 'the running job did not advance on screen within 15 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(await page.evaluate('window.__notReloaded === true'), true, 'the page was not reloaded');
  await shot(page, 'rebalance-after');
  await page.goto(`${dash.url}rebalance?job=${FINISHED}`);
  assert.equal(num(await text(page, '[data-done]')), 5);
  await page.close();
});

test('a non-loopback bind: the browser gets the login form, nothing else, until it signs in with the operator token', async () => {
  const token = 'browser-test-operator-token-0123456789';
  fs.writeFileSync(path.join(f.stateDir, 'operator-token'), `${token}\n`, { mode: 0o600 });
  const guarded = await startDashboard(f, ['--bind', '0.0.0.0']);
  try {
    const local = `http://127.0.0.1:${new URL(guarded.url).port}/`;
    const page = await open(`${local}runs`);
    assert.match(page.url(), /\/login$/);
    assert.equal(await page.locator('td[data-cell]').count(), 0);
    const api = await page.goto(`${local}api/runs`);
    assert.equal(api?.status(), 401);
    await page.goto(`${local}login`);
    await page.fill('input[name=token]', 'wrong-wrong-wrong-wrong');
    await page.click('button[type=submit]');
    assert.match(await page.content(), /wrong token/);
    await shot(page, 'login-refused');
    await page.fill('input[name=token]', token);
    await page.click('button[type=submit]');
    await page.waitForURL(/\/runs$/);
    assert.ok((await page.locator('td[data-cell]').count()) > 0);
    await page.close();
  } finally {
    await guarded.p.stop('SIGTERM');
    fs.rmSync(path.join(f.stateDir, 'operator-token'));
  }
});

test('no page fetched anything from another host', () => {
  assert.deepEqual(foreign, []);
});
