/**
 * Access-log and request-metering rules as tables of cases, and the audit-line reader on log
 * files shaped like the original's (bunyan's non-JSON lines, a line cut by a rotation, muskie
 * 2012 lines with no billable_operation and numeric content-lengths): malformed lines counted
 * exactly with examples, MALFORMED_LIMIT, and the lines the original skipped.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckPool } from '../src/dumps/duckdb.js';
import { clientAddress, sanitize, wantedForAccessLog } from '../src/jobs/access-logs/access-logs.rules.js';
import { malformedLimit, validMalformedLimit } from '../src/jobs/request-metering/request-metering.rules.js';
import {
  countJsonLines,
  isMalformedLine,
  scanHour,
} from '../src/jobs/request-metering/request-metering.scan.js';

const duck = new DuckPool();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-audit-lines-'));
after(async () => {
  await duck.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('client address: the first x-forwarded-for entry, always IPv6, as deliver-access.js derived it', () => {
  const cases: [string | undefined, string][] = [
    ['10.3.91.236', '::ffff:a03:5bec'], // mackerel docs/reports.md's sample
    [undefined, '::ffff:a9fe:1'], // no header: 169.254.0.1
    ['', '::ffff:a9fe:1'],
    ['203.0.113.9, 10.0.0.1', '::ffff:cb00:7109'],
    ['unknown, 76.121.137.102', 'unknown'], // MANTA-1886
    [' , 10.0.0.1', 'unknown'], // MANTA-1918: empty first entry
    ['not-an-ip', 'unknown'], // MANTA-2756: a bogus address never fails the job
    ['256.1.1.1', 'unknown'],
    ['::ffff:66.249.85.112', '::ffff:42f9:5570'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the FIRST zero run, as ipaddr.js
    ['2001:DB8::1', '2001:db8::1'],
    ['::1', '::1'],
    ['::', '::'],
    ['1:2:3:4:5:6:7:8:9', 'unknown'],
    ['1::2::3', 'unknown'],
  ];
  for (const [xff, want] of cases) assert.equal(clientAddress(xff), want, String(xff));
});

test('sanitize keeps the whitelist, renames url, drops authorization and x-forwarded-for', () => {
  const rec = {
    audit: true,
    billable_operation: 'PUT',
    operation: 'putobject',
    req_id: 'r1',
    remoteAddress: '10.0.0.5',
    req: {
      method: 'PUT',
      url: '/alice/stor/x',
      headers: { 'content-length': '3', authorization: 'Signature …', 'x-forwarded-for': '10.3.91.236' },
      httpVersion: '1.1',
      owner: 'uuid-a',
      caller: { login: 'bob', uuid: 'uuid-b', groups: [], user: null },
      timers: { a: 1 },
    },
    res: { statusCode: 204, headers: { etag: 'e' }, trailer: false },
    err: { message: 'secret' },
  };
  const out = sanitize(rec);
  assert.equal(
    JSON.stringify(out),
    JSON.stringify({
      billable_operation: 'PUT',
      req: {
        method: 'PUT',
        headers: { 'content-length': '3' },
        httpVersion: '1.1',
        caller: { login: 'bob' },
        'request-uri': '/alice/stor/x',
      },
      res: { statusCode: 204, headers: { etag: 'e' } },
      remoteAddress: '::ffff:a03:5bec',
    }),
    'exact keys and order',
  );
  assert.equal(rec.req.headers.authorization, 'Signature …', 'the input is not modified');
  assert.equal(wantedForAccessLog(rec), true);
  assert.equal(wantedForAccessLog({ ...rec, req: { ...rec.req, url: '/ping' } }), false);
  assert.equal(wantedForAccessLog({ ...rec, req: { ...rec.req, owner: undefined } }), false);
  assert.equal(wantedForAccessLog({ ...rec, req: { ...rec.req, caller: { login: 'poseidon' } } }), false);
  assert.equal(wantedForAccessLog({ ...rec, audit: false }), false);
});

test('MALFORMED_LIMIT: a count or a share of the lines (the original forgot to divide by 100)', () => {
  assert.equal(malformedLimit('10', 1000), 10);
  assert.equal(malformedLimit(10, 1000), 10);
  assert.equal(malformedLimit('1%', 1000), 10);
  assert.equal(malformedLimit('0.5%', 1000), 5);
  for (const ok of ['0', '10', '1%', '2.5%', 3]) assert.ok(validMalformedLimit(ok), String(ok));
  for (const bad of ['', '%', 'ten', '-1', '1%%']) assert.ok(!validMalformedLimit(bad), bad);
});

const line = (o: object) => JSON.stringify(o);
const audit = (
  over: Record<string, unknown> = {},
  req: Record<string, unknown> = {},
  res: Record<string, unknown> = {},
) =>
  line({
    name: 'audit',
    audit: true,
    level: 30,
    billable_operation: 'GET',
    reqHeaderLength: 100,
    resHeaderLength: 50,
    req: { method: 'GET', url: '/a/stor/x', headers: {}, httpVersion: '1.1', owner: 'o1', ...req },
    res: { statusCode: 200, headers: { 'content-length': 7 }, ...res },
    time: '2012-11-28T21:46:00.933Z',
    v: 0,
    ...over,
  });

test('the reader: classes, bytes and exact malformed counts with examples', async () => {
  const file = path.join(dir, 'a.log');
  fs.writeFileSync(
    file,
    [
      '[ Nov 28 21:35:27 Enabled. ]', // bunyan's service line: not JSON, not malformed
      '',
      audit(), // GET 7 bytes out
      audit({ billable_operation: 'LIST' }, {}, { headers: {} }), // LIST, no content-length: bytesTransferred absent → 0
      audit(
        { billable_operation: 'PUT', bytesTransferred: 5000 },
        { method: 'PUT', headers: {} },
        { statusCode: 204, headers: {} },
      ), // streamed
      audit(
        { billable_operation: 'PUT' },
        { method: 'PUT', headers: { 'content-length': '6880413' } },
        { statusCode: 204, headers: {} },
      ),
      audit({}, {}, { statusCode: 206 }), // a Range GET: not 200–204
      audit({}, {}, { statusCode: 404 }),
      audit({ billable_operation: 'PUT' }, { method: 'PUT' }, { statusCode: 503 }), // a 5xx
      audit({}, { url: '/ping' }),
      audit({}, { owner: undefined }),
      audit({}, { caller: { login: 'poseidon' } }),
      audit({ billable_operation: undefined }), // muskie 2012: bytes only
      audit({ billable_operation: 'PATCH' }), // unknown: bytes, a warning
      line({ name: 'muskie', level: 30, msg: 'not an audit record', time: 'x', v: 0 }),
      '{"name":"audit","audit":true,"req":{"method":"GE', // cut by a rotation
      '{"unrelated":1}', // an object with none of a log record's fields
      '   {"level":40,"msg":"leading blanks"}',
      '',
    ].join('\n'),
  );
  const s = await scanHour(duck, [file]);
  const f = s.files[0]!;
  assert.deepEqual(
    { json: f.jsonLines, other: f.otherLines },
    { json: 16, other: 1 },
    'two JSON-looking lines are malformed, the service line and blank lines are not',
  );
  assert.deepEqual(f.classes, {
    notAudit: 2,
    malformed: 2,
    ping: 1,
    noOwner: 1,
    operator: 1,
    failed: 3,
    billable: 6,
  });
  assert.deepEqual(
    f.examples.map((e) => e.line),
    [16, 17],
  );
  const u = s.usage.get('o1')!;
  assert.deepEqual(Object.fromEntries(Object.entries(u.type).map(([k, v]) => [k, Number(v)])), {
    DELETE: 0,
    GET: 1,
    HEAD: 0,
    LIST: 1,
    OPTIONS: 0,
    POST: 0,
    PUT: 2,
  });
  assert.equal(u.in, 5000n + 6880413n, 'the streamed upload counts its bytesTransferred');
  assert.equal(u.out, 7n * 3n, 'GET, the line with no billable_operation and the PATCH one');
  assert.equal(u.headerIn, 600n, 'the six counted lines');
  assert.equal(s.unknownOperations, 1);
  assert.deepEqual(s.unknownOperationExamples, ['PATCH']);
  assert.equal(s.noOperation, 1);
});

test('the reader counts lines without the byte-level count when DuckDB gave no row of NULLs', async () => {
  // Only records, with blank, blank-looking and CRLF lines DuckDB skips as the count does.
  const file = path.join(dir, 'clean.log');
  fs.writeFileSync(
    file,
    [
      '',
      audit(),
      '   ',
      `${audit({}, { url: '/ping' })}\r`,
      '\t',
      `  ${audit({ audit: false })}`,
      '\r',
      audit(),
      '',
    ].join('\n'),
  );
  const f = (await scanHour(duck, [file])).files[0]!;
  assert.deepEqual(await countJsonLines(file), { jsonLines: 4, otherLines: 0 });
  assert.deepEqual({ json: f.jsonLines, other: f.otherLines }, { json: 4, other: 0 });
  assert.deepEqual(
    [f.classes.billable, f.classes.ping, f.classes.notAudit, f.classes.malformed],
    [2, 1, 1, 0],
  );
  // An empty object and one of blank lines only: no lines at all.
  const none = path.join(dir, 'blank.log');
  fs.writeFileSync(none, '\n  \n\r\n');
  const e = path.join(dir, 'empty.log');
  fs.writeFileSync(e, '');
  const s = await scanHour(duck, [none, e]);
  assert.deepEqual(
    s.files.map((x) => [x.jsonLines, x.otherLines]),
    [
      [0, 0],
      [0, 0],
    ],
  );
});

test('line counting agrees with a plain split across chunk boundaries and odd endings', async () => {
  const parts = [
    '{"level":1}',
    '',
    'text',
    '\t{"v":0}',
    '   ',
    `{"msg":"${'x'.repeat(3 << 20)}"}`,
    'tail without newline',
  ];
  const file = path.join(dir, 'b.log');
  fs.writeFileSync(file, parts.join('\n'));
  assert.deepEqual(await countJsonLines(file), { jsonLines: 3, otherLines: 2 });
  assert.equal(isMalformedLine('{"unrelated":true}'), true);
  assert.equal(isMalformedLine('{"level":30}'), false);
  // A req that is not an object reads as absent (DuckDB's struct of NULLs): a record, not malformed.
  assert.equal(isMalformedLine('{"audit":true,"req":"x"}'), false);
  assert.equal(isMalformedLine('{"audit":'), true);
});

test('a content-length that is not a decimal number counts as absent; a req that is not an object reads as absent', async () => {
  const file = path.join(dir, 'cl.log');
  const put = (cl: unknown, streamed?: number) =>
    audit(
      { billable_operation: 'PUT', ...(streamed !== undefined ? { bytesTransferred: streamed } : {}) },
      { method: 'PUT', headers: { 'content-length': cl } },
      { statusCode: 204, headers: {} },
    );
  fs.writeFileSync(
    file,
    [
      put('12'), // 12
      put(30), // a number: 30
      put('012'), // decimal digits: 12
      put(' 12'), // not a decimal number: absent → bytesTransferred 1000
      put('1e3', 1000), // absent → 1000
      put('0x10', 1000), // absent → 1000
      put(12.7, 1000), // absent → 1000
      put('-5', 1000), // absent → 1000
      '{"name":"audit","audit":true,"level":30,"req":"x"}', // req not an object: noOwner
    ].join('\n') + '\n',
  );
  const s = await scanHour(duck, [file]);
  const f = s.files[0]!;
  assert.equal(f.classes.malformed, 0);
  assert.equal(f.classes.noOwner, 1);
  assert.equal(f.classes.billable, 8);
  // ' 12' has no bytesTransferred: 0. The rest: 12 + 30 + 12 + 4 × 1000.
  assert.equal(s.usage.get('o1')!.in, 12n + 30n + 12n + 4000n);
});
