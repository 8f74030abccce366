/**
 * Request metering and access logs through the executor, on a real deployment's front door:
 * a workload of every operation kind, failed requests (4xx/5xx), streamed and fixed-length
 * uploads, cross-account and anonymous reads of /public, operator calls and pings; its hour of
 * audit log published as muskie did. Both jobs' files are compared with a ground truth computed
 * here from the raw audit lines; a rerun writes byte-identical files; a log arriving after the
 * hour was metered reruns the hour with a late-input alert; an instance that was up but has not
 * published keeps the hour waiting, with a deadline alert naming it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { ManualClock } from '../src/core/clock.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import { hourKeyOf, MUSKIE_LOG_ROOT } from '../src/frontdoor/audit-log.js';
import { FrontDoorClient } from '../src/frontdoor/client.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { defaultJobs } from '../src/jobs/catalog.js';
import { recordFrontDoorUp } from '../src/metadata/frontdoor-hours.repository.js';
import { checkLateInputs } from '../src/pipeline/late-inputs.js';
import { driveDays, rerun } from '../src/pipeline/operations.js';
import { alertsForRun, latestRuns, type RunRow } from '../src/pipeline/runs.repository.js';
import { pipelineSettings } from '../src/pipeline/settings.js';
import { readObjectText } from '../src/objectstore/object-store.js';
import { FAST, openTestPipeline, type TestPipeline } from './helpers/pipeline.js';
import { startTestDeployment } from './helpers/deployment.js';
import { testConfig } from './helpers/pg.js';

let d: Deployment;
let tp: TestPipeline;
const clock = new ManualClock(0);
const ids: Record<string, string> = {};
let hour = '';
let day = '';

before(async () => {
  const config = testConfig();
  ({ d } = await startTestDeployment(config));
  const settings = pipelineSettings(config, FAST);
  tp = await openTestPipeline({ config, jobs: defaultJobs(settings), settings: FAST });
  tp.rt.services.clock = clock;
  await tp.startWorker();
});
after(async () => {
  await d?.close();
  await tp?.close();
});

const OPS = ['DELETE', 'GET', 'HEAD', 'LIST', 'OPTIONS', 'POST', 'PUT'] as const;

async function raw(method: string, path: string, token?: string, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(path, d.frontdoorUrl), {
    method,
    headers: { ...headers, ...(token ? { authorization: `Token ${token}` } : {}) },
  });
  await res.arrayBuffer();
  return res.status;
}

/** Every kind of request the front door serves, in one hour. */
async function workload(): Promise<void> {
  const tokens: Record<string, string> = {};
  for (const [login, reports] of [
    ['alice', true],
    ['bob', true],
    ['carol', false],
  ] as const) {
    const a = await createAccount(d.tier, { login, reports }, Date.now());
    ids[login] = a.account.uuid;
    tokens[login] = a.token;
  }
  const alice = new FrontDoorClient(d.frontdoorUrl, tokens.alice);
  const bob = new FrontDoorClient(d.frontdoorUrl, tokens.bob);
  const carol = new FrontDoorClient(d.frontdoorUrl, tokens.carol);
  const op = d.client();
  try {
    await alice.mkdirp('/alice/stor/docs');
    await alice.put('/alice/stor/docs/fixed', Buffer.alloc(3000, 1));
    // Streamed (chunked, no content-length): the original counted 0 bytes in (bytesTranferred).
    await alice.put(
      '/alice/stor/docs/streamed',
      Readable.from([Buffer.alloc(4096, 2), Buffer.alloc(1000, 3)]),
    );
    await alice.put('/alice/public/shared', Buffer.alloc(777, 4));
    await alice.get('/alice/stor/docs/fixed');
    await alice.get('/alice/stor/docs/fixed', 'bytes=0-9'); // 206: outside 200–204
    await alice.head('/alice/stor/docs/streamed');
    await alice.list('/alice/stor/docs');
    await alice.link('/alice/stor/docs/link', '/alice/stor/docs/fixed');
    await alice.delete('/alice/stor/docs/link');
    await bob.get('/alice/public/shared'); // cross-account read: alice's bill
    await raw('GET', '/alice/public/shared', undefined, { 'x-forwarded-for': '203.0.113.9, 10.0.0.1' });
    await raw('GET', '/alice/stor/docs/fixed', tokens.bob); // 403
    await raw('GET', '/alice/stor/docs/missing', tokens.alice); // 404
    await raw('OPTIONS', '/alice/stor/docs/fixed', tokens.alice); // 405, no owner
    await raw('POST', '/alice/stor/docs/fixed', tokens.alice); // 405
    await raw('GET', '/ping');
    await raw('GET', '/nobody/stor/x', tokens.alice); // unknown account
    await bob.put('/bob/stor/b1', Buffer.alloc(10, 5));
    await bob.get('/bob/stor/b1');
    await raw('GET', '/bob/stor/b1', undefined, { 'x-forwarded-for': 'not-an-ip' }); // anonymous: 403
    await carol.put('/carol/stor/c1', Buffer.alloc(20, 6));
    await carol.get('/carol/stor/c1');
    await op.get('/alice/public/shared'); // the operator's call: dropped
  } finally {
    for (const c of [alice, bob, carol, op]) c.close();
  }
}

// ---- the ground truth, from the raw lines, written without the job's code ----

interface Line {
  audit?: boolean;
  billable_operation?: string;
  reqHeaderLength: number;
  resHeaderLength: number;
  bytesTransferred?: number;
  req: {
    url: string;
    method: string;
    owner?: string;
    headers: Record<string, string>;
    httpVersion: string;
    caller?: { login: string };
  };
  res: { statusCode: number; headers: Record<string, string | number> };
}

async function rawLines(): Promise<Line[]> {
  const out: Line[] = [];
  for (const p of await tp.store.list(
    `${MUSKIE_LOG_ROOT}/${hour.slice(0, 10).replaceAll('-', '/')}/${hour.slice(11)}/`,
  ))
    for (const l of (await readObjectText(tp.store, p)).split('\n'))
      if (l.startsWith('{')) out.push(JSON.parse(l) as Line);
  return out;
}

function expectedRequests(lines: Line[]): Map<string, unknown> {
  const by = new Map<string, { type: Record<string, number>; bw: Record<string, number> }>();
  for (const l of lines) {
    if (!l.audit || l.req.url === '/ping' || !l.req.owner || l.req.caller?.login === 'poseidon') continue;
    if (l.res.statusCode < 200 || l.res.statusCode > 204) continue;
    const e = by.get(l.req.owner) ?? {
      type: Object.fromEntries(OPS.map((o) => [o, 0])),
      bw: { in: 0, out: 0, headerIn: 0, headerOut: 0 },
    };
    e.type[l.billable_operation!]! += 1;
    e.bw.headerIn! += l.reqHeaderLength;
    e.bw.headerOut! += l.resHeaderLength;
    const len =
      Number(l.res.headers['content-length'] ?? 0) ||
      Number(l.req.headers['content-length'] ?? 0) ||
      l.bytesTransferred ||
      0;
    if (l.req.method === 'GET') e.bw.out! += len;
    if (l.req.method === 'PUT') e.bw.in! += len;
    by.set(l.req.owner, e);
  }
  const strings = (o: Record<string, number>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)]));
  return new Map(
    [...by].map(([owner, e]) => [
      owner,
      { owner, requests: { type: strings(e.type), bandwidth: strings(e.bw) } },
    ]),
  );
}

function expectedAccessLog(lines: Line[], owner: string): unknown[] {
  return lines
    .filter(
      (l) => l.audit && l.req.url !== '/ping' && l.req.owner === owner && l.req.caller?.login !== 'poseidon',
    )
    .map((l) => {
      const { authorization: _a, 'x-forwarded-for': xff, ...headers } = l.req.headers;
      const first = (xff ?? '169.254.0.1').split(',')[0]!.trim();
      const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(first);
      const hex = (a: string, b: string) => ((Number(a) << 8) | Number(b)).toString(16);
      return {
        billable_operation: l.billable_operation,
        req: {
          method: l.req.method,
          headers,
          httpVersion: l.req.httpVersion,
          ...(l.req.caller ? { caller: { login: l.req.caller.login } } : {}),
          'request-uri': l.req.url,
        },
        res: { statusCode: l.res.statusCode, headers: l.res.headers },
        remoteAddress: m ? `::ffff:${hex(m[1]!, m[2]!)}:${hex(m[3]!, m[4]!)}` : 'unknown',
      };
    });
}

// ---- helpers ----

const opFile = () =>
  `/poseidon/stor/usage/request/${hour.slice(0, 10).replaceAll('-', '/')}/${hour.slice(11)}/h${hour.slice(11)}.json`;
const userFile = (login: string) =>
  `/${login}/reports/usage/request/${hour.slice(0, 10).replaceAll('-', '/')}/${hour.slice(11)}/h${hour.slice(11)}.json`;
const accessFile = (login: string) =>
  `/${login}/reports/access-logs/${hour.slice(0, 10).replaceAll('-', '/')}/${hour.slice(11)}/h${hour.slice(11)}.json`;
const text = (p: string) => readObjectText(tp.store, p);
const jsonLines = async (p: string) =>
  (await text(p))
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as unknown);

async function runsOf(job: string): Promise<RunRow[]> {
  const keys = Array.from({ length: 24 }, (_, h) => `${day}T${String(h).padStart(2, '0')}`);
  return latestRuns(tp.rt.control, job, keys);
}

async function drive(): Promise<RunRow[]> {
  return driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 60_000 });
}

test('the hour waits for its end, then meters every request by owner as the raw lines say', async () => {
  const started = new Date();
  await workload();
  hour = hourKeyOf(started);
  day = hour.slice(0, 10);
  assert.equal(hourKeyOf(new Date()), hour, 'the workload ran within one hour (rerun the test)');
  const end = Date.parse(`${hour}:00:00Z`) + 3_600_000;
  clock.set(end - 60_000); // the hour is not over: its runs wait
  await rerun(tp.rt, 'request-metering', day, { downstream: false, dryRun: false });
  await rerun(tp.rt, 'access-logs', day, { downstream: false, dryRun: false });
  for (let i = 0; i < 5; i++) await tp.coordinator.tick();
  const waiting = (await runsOf('request-metering')).find((r) => r.partitionKey === hour)!;
  assert.equal(waiting.state, 'waiting');
  assert.match(waiting.waitingOn ?? '', new RegExp(`hour ${hour} ends`));

  clock.set(end + 1000); // over, but frontdoor-0 (up during the hour) has not published yet
  for (let i = 0; i < 5; i++) await tp.coordinator.tick();
  const still = (await runsOf('request-metering')).find((r) => r.partitionKey === hour)!;
  assert.equal(still.state, 'waiting');
  assert.match(still.waitingOn ?? '', /no audit log yet from front door frontdoor-0/);

  const published = await d.publishLogs(new Date(end + 1000));
  assert.ok(
    published.some((p) => p.endsWith('/frontdoor-0.log')),
    published.join(' '),
  );
  const runs = await drive();
  const mine = runs.filter(
    (r) => (r.job === 'request-metering' || r.job === 'access-logs') && r.partitionKey <= hour,
  );
  assert.equal(mine.length, 2 * (Number(hour.slice(11)) + 1));
  assert.ok(
    !runs.some((r) => r.partitionKey > hour && r.partitionKey.length === 13),
    'a drive neither waits for nor returns the hours not over yet',
  );
  const later = (await runsOf('request-metering')).filter((r) => r.partitionKey > hour);
  assert.ok(
    later.every((r) => r.state === 'waiting'),
    'the hours not over yet wait',
  );
  assert.ok(
    mine.every((r) => r.state === 'succeeded'),
    mine
      .filter((r) => r.state !== 'succeeded')
      .map((r) => `${r.job} ${r.partitionKey} ${r.state} ${r.waitingOn}`)
      .join('; '),
  );

  const lines = await rawLines();
  const expected = expectedRequests(lines);
  const got = await jsonLines(opFile());
  assert.deepEqual(
    got,
    [...expected.keys()].sort().map((o) => expected.get(o)),
  );
  // Every owner, fixed and streamed uploads, the cross-account read on alice's bill.
  const alice = expected.get(ids.alice!) as {
    requests: { type: Record<string, string>; bandwidth: Record<string, string> };
  };
  assert.equal(alice.requests.type.PUT, '5', 'mkdir, 3 objects, 1 link');
  assert.equal(alice.requests.type.LIST, '1');
  assert.equal(alice.requests.type.DELETE, '1');
  assert.equal(
    alice.requests.bandwidth.in,
    String(3000 + 5096 + 777),
    'the streamed upload counts (bytesTranferred fixed)',
  );
  assert.equal(alice.requests.type.GET, '3', 'own GET, bob’s and the anonymous read of /public');
  assert.ok(!expected.has(undefined as unknown as string));
  assert.ok(
    lines.some((l) => l.req.caller?.login === 'poseidon'),
    'the operator call is in the log',
  );
  assert.ok(
    lines.some((l) => l.res.statusCode >= 400),
    'failed requests are in the log',
  );
  assert.ok(lines.some((l) => l.req.url === '/ping'));

  // Accounts with reports on get theirs (no owner, with date) + latest; carol opted out.
  const aliceReport = await jsonLines(userFile('alice'));
  const { owner: _o, ...aliceRecord } = expected.get(ids.alice!) as Record<string, unknown>;
  assert.deepEqual(aliceReport, [{ ...aliceRecord, date: `${hour}:00:00.000Z` }]);
  assert.equal(await text('/alice/reports/usage/request/latest'), await text(userFile('alice')));
  assert.equal(await tp.store.head(userFile('carol')), undefined);

  // Access logs: each account its objects' requests (failed ones too), sanitized, in log order.
  for (const login of ['alice', 'bob']) {
    assert.deepEqual(await jsonLines(accessFile(login)), expectedAccessLog(lines, ids[login]!), login);
    assert.equal(await text(`/${login}/reports/access-logs/latest`), await text(accessFile(login)));
  }
  const aliceAccess = await text(accessFile('alice'));
  assert.doesNotMatch(aliceAccess, /authorization|x-forwarded-for|"url"/);
  assert.match(aliceAccess, /"remoteAddress":"::ffff:cb00:7109"/, '203.0.113.9, the first x-forwarded-for');
  assert.match(aliceAccess, /"remoteAddress":"::ffff:7f00:1"/, 'the front door as its own load balancer');
  assert.equal(await tp.store.head(accessFile('carol')), undefined);
});

test('a rerun of the hour writes byte-identical files', async () => {
  const files = [opFile(), userFile('alice'), userFile('bob'), accessFile('alice'), accessFile('bob')];
  const before = await Promise.all(files.map(text));
  for (const job of ['request-metering', 'access-logs'])
    await rerun(tp.rt, job, day, { downstream: false, dryRun: false });
  const runs = await drive();
  assert.ok(runs.filter((r) => r.partitionKey === hour).every((r) => r.state === 'succeeded' && r.seq >= 2));
  assert.deepEqual(await Promise.all(files.map(text)), before);
});

test('a log arriving after the hour was metered reruns it, with a late-input alert', async () => {
  const late = {
    audit: true,
    billable_operation: 'GET',
    reqHeaderLength: 11,
    resHeaderLength: 22,
    bytesTransferred: 0,
    req: { method: 'GET', url: '/bob/stor/b1', headers: {}, httpVersion: '1.1', owner: ids.bob },
    res: { statusCode: 200, headers: { 'content-length': '10' } },
  };
  const path = `${MUSKIE_LOG_ROOT}/${hour.slice(0, 10).replaceAll('-', '/')}/${hour.slice(11)}/frontdoor-9.log`;
  await tp.store.put(path, `${JSON.stringify(late)}\n`);
  const created = await checkLateInputs(tp.rt);
  assert.deepEqual(created.map((c) => `${c.job} ${c.partitionKey}`).sort(), [
    `access-logs ${hour}`,
    `request-metering ${hour}`,
  ]);
  const alerts = await alertsForRun(tp.rt.control, created[0]!.runId);
  assert.equal(alerts[0]?.kind, 'late-input');
  assert.match(alerts[0].message, /frontdoor-9\.log arrived/);
  await drive();
  const expected = expectedRequests(await rawLines());
  assert.deepEqual(
    await jsonLines(opFile()),
    [...expected.keys()].sort().map((o) => expected.get(o)),
  );
  assert.equal(
    (expected.get(ids.bob!) as { requests: { type: Record<string, string> } }).requests.type.GET,
    '2',
    "bob's own GET and the late line (the anonymous GET of his object failed)",
  );
  assert.deepEqual(await checkLateInputs(tp.rt), [], 'nothing changed since the rerun');
});

test('an instance that was up but has not published keeps its hour waiting; past the deadline, an alert names it', async () => {
  const other = `${day}T${hour.slice(11) === '00' ? '01' : '00'}`;
  // When the workload ran in hour 00, `other` is 01: let it end, so only the front door waits.
  const otherEnd = Date.parse(`${other}:00:00Z`) + 3_600_000;
  if (clock.now() < otherEnd) clock.set(otherEnd + 1000);
  await recordFrontDoorUp(tp.rt.control, 'frontdoor-7', other);
  await rerun(tp.rt, 'request-metering', day, { downstream: false, dryRun: false });
  for (let i = 0; i < 5; i++) await tp.coordinator.tick();
  const run = (await runsOf('request-metering')).find((r) => r.partitionKey === other)!;
  assert.equal(run.state, 'waiting');
  assert.match(run.waitingOn ?? '', /frontdoor-7/);
  clock.set(run.deadlineAt.getTime() + 1);
  await tp.coordinator.tick();
  const alerts = await alertsForRun(tp.rt.control, run.id);
  assert.equal(alerts[0]?.kind, 'deadline');
  assert.match(alerts[0].message, /frontdoor-7/);
  // It publishes (an empty log: it served nothing); the hour runs.
  await tp.store.put(
    `${MUSKIE_LOG_ROOT}/${other.slice(0, 10).replaceAll('-', '/')}/${other.slice(11)}/frontdoor-7.log`,
    '',
  );
  await drive();
  assert.equal((await runsOf('request-metering')).find((r) => r.partitionKey === other)!.state, 'succeeded');
});

test('MALFORMED_LIMIT per log object: above it the hour is invalid (not committed); below, degraded with examples', async () => {
  const past = '2024-01-01';
  const good = JSON.stringify({
    name: 'audit',
    audit: true,
    level: 30,
    billable_operation: 'HEAD',
    reqHeaderLength: 1,
    resHeaderLength: 1,
    req: { method: 'HEAD', url: '/a/stor/x', headers: {}, owner: ids.alice },
    res: { statusCode: 200, headers: {} },
  });
  const put = (h: string, name: string, bad: number) =>
    tp.store.put(
      `${MUSKIE_LOG_ROOT}/2024/01/01/${h}/${name}`,
      `${[good, ...Array<string>(bad).fill('{"cut":')].join('\n')}\n`,
    );
  await put('03', 'fd-a.log', 11); // the default limit is 10
  await put('04', 'fd-a.log', 2);
  await put('04', 'fd-b.log', 0);
  await rerun(tp.rt, 'request-metering', past, { downstream: false, dryRun: false });
  const runs = await driveDays(tp.rt, tp.coordinator, [past], { timeoutMs: 60_000 });
  const at = (h: string) =>
    runs.find((r) => r.job === 'request-metering' && r.partitionKey === `${past}T${h}`)!;
  assert.equal(at('03').state, 'invalid');
  assert.match(JSON.stringify(at('03').report?.events), /too-many-malformed-lines/);
  assert.equal(await tp.store.head('/poseidon/stor/usage/request/2024/01/01/03/h03.json'), undefined);
  assert.deepEqual([at('04').state, at('04').verdict], ['succeeded', 'degraded']);
  const ev = at('04').report!.events['error:malformed-line']!;
  assert.equal(ev.count, 2);
  assert.match(JSON.stringify(ev.examples[0]), /fd-a\.log.*"line":2/);
  assert.equal(at('05').state, 'succeeded', 'an hour with no logs and no instance up: metered, empty');
  assert.equal(
    await tp.store.head('/poseidon/stor/usage/request/2024/01/01/05/h05.json'),
    undefined,
    'and no file',
  );
});
