/**
 * The README's evacuation procedure, followed literally (issue 16): every line of its `sh` block
 * is run as a CLI process, in order, on a clean deployment. Filled in from the output of earlier
 * lines: `<plan-id>` and `<node,node,…>` (the dry run's plan id and the nodes its table shows
 * receiving objects); `sleep 60` waits this deployment's picker lag. Between the lines, one
 * destination is down during `run` (so `status --objects` and `retry` have something to show and
 * do) and back before `retry`. Then an independent check, reading the nodes' files: every live
 * record's copies exist with the right MD5, none on the evacuated node, no record with fewer
 * datacenters than before, the records of one object agree.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  disagreements,
  durabilityViolations,
  liveObjectRecords,
  startCliDeployment,
} from './helpers/rebalance.js';
import { runCli, type CliResult } from './helpers/cli.js';
import { testConfig } from './helpers/pg.js';
import type { Deployment } from '../src/deployment/deployment.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';

const ROOT = path.resolve(import.meta.dirname, '..');
/** The node the README evacuates. */
const NODE = '3.stor.dc3.remora.local';
/** This deployment's picker lag: what `sleep 60` waits. */
const LAG_MS = 3000;

let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;
let owner: string;

before(async () => {
  ({ d, cleanup, alice, owner } = await startCliDeployment({
    picker: { ...testConfig().picker, lagMs: LAG_MS },
  }));
  // A small namespace: objects of several sizes and durability levels, links across directories
  // (and so across shards), an overwritten object.
  await alice.mkdirp('/alice/stor/a');
  await alice.mkdirp('/alice/stor/b/c');
  await alice.mkdirp('/alice/public/links');
  for (let i = 0; i < 30; i++) {
    const size = [1, 1000, 50_000, 300_000][i % 4]!;
    await alice.put(`/alice/stor/${i % 2 ? 'a' : 'b/c'}/o${i}`, crypto.randomBytes(size), {
      ...(i % 5 === 0 ? { copies: 3 } : {}),
    });
  }
  for (let i = 0; i < 30; i += 3)
    await alice.link(`/alice/public/links/l${i}`, `/alice/stor/${i % 2 ? 'a' : 'b/c'}/o${i}`);
  await alice.put('/alice/stor/a/o1', crypto.randomBytes(2000)); // overwritten
});
after(() => cleanup());

/** The README's procedure: the lines of the `sh` block after its heading, comments removed. */
function readmeProcedure(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Operator procedure: evacuating a storage node'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'the README has the procedure block');
  return block
    .split('\n')
    .map((l) => l.replace(/\s#.*$/, '').trim())
    .filter((l) => l.length > 0);
}

/** Nodes the dry run's destination table shows receiving objects. */
function receivingNodes(planText: string): string[] {
  const lines = planText.split('\n');
  const head = lines.findIndex((l) => /^node\s+dc\s+role\s+objects/.test(l));
  assert.ok(head >= 0, planText);
  const out: string[] = [];
  for (const l of lines.slice(head + 1)) {
    const [node, , role, objects] = l.split(/\s+/);
    if (!node || !/\.stor\./.test(node)) break;
    if (role === 'destination' && Number(objects) > 0) out.push(node);
  }
  return out;
}

function receivingCounts(planText: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of planText.split('\n')) {
    const [node, , role, objects] = l.split(/\s+/);
    if (node && role === 'destination' && Number(objects) > 0) m.set(node, Number(objects));
  }
  return m;
}

test('the README evacuation procedure, line by line as CLI processes, ends SAFE TO REMOVE; nothing lost', async () => {
  const lines = readmeProcedure();
  assert.ok(lines.length >= 9, lines.join('\n'));
  assert.ok(
    lines.every((l) => l.startsWith('remora ') || /^sleep \d+$/.test(l)),
    `only remora commands and the picker wait: ${lines.join('\n')}`,
  );
  // The baseline of the independent check: every record's datacenters before anything moved.
  const baseline = new Map<string, number>();
  assert.deepEqual(await durabilityViolations(d, baseline), []);
  const before = await liveObjectRecords(d);
  const onNode = before.filter((r) => r.value.sharks.some((s) => s.manta_storage_id === NODE));
  assert.ok(onNode.length >= 5, `the node holds copies: ${onNode.length}`);

  const outputs: { line: string; r: CliResult }[] = [];
  let planId: string | undefined;
  let expected: string[] = [];
  let down: string | undefined;
  for (const line of lines) {
    if (line.startsWith('sleep ')) {
      await new Promise((r) => setTimeout(r, LAG_MS + 500));
      continue;
    }
    const args = line
      .split(/\s+/)
      .slice(1)
      .map((a) => (a === '<plan-id>' ? planId! : a === '<node,node,…>' ? expected.join(',') : a));
    assert.ok(!args.some((a) => a === undefined), line);
    if (args[0] === 'rebalance' && args[1] === 'run') {
      // The destination receiving most objects is down during the run.
      const counts = [...receivingCounts(outputs.find((o) => o.line.includes('--dry-run'))!.r.stdout)];
      down = counts.sort((x, y) => y[1] - x[1])[0]![0];
      await d.stopNode(down);
    }
    if (args[0] === 'rebalance' && args[1] === 'retry' && down) await d.startNode(down);
    const r = await runCli(d.config.stateDir, args, { timeoutMs: 120_000 });
    outputs.push({ line, r });
    assert.equal(r.status, 0, `${line}\n${r.stdout}\n${r.stderr}`);
    if (args.includes('--dry-run')) {
      planId = /dry run: plan (\S+) kept as a draft/.exec(r.stdout)?.[1];
      assert.ok(planId, r.stdout);
      expected = receivingNodes(r.stdout);
      assert.ok(expected.length >= 2, r.stdout);
    }
  }
  const out = (pred: (l: string) => boolean) => outputs.find((o) => pred(o.line))!.r;

  // What each step said.
  assert.match(
    out((l) => l.startsWith('remora storage show')).stdout,
    new RegExp(`${NODE.replace(/\./g, '\\.')}\\s+dc3\\s+disabled\\s+disabled`),
  );
  const snap = out((l) => l.startsWith('remora snapshot'));
  assert.equal((snap.stdout.match(/verdict ok/g) ?? []).length, d.tier.indexShards.length, snap.stdout);
  assert.match(snap.stderr, /storage shard, not unpacked/);
  const commit = out((l) => l.includes('--commit'));
  assert.match(commit.stdout, new RegExp(`job ${planId} planned`));
  const run = out((l) => l.startsWith('remora rebalance run'));
  const unreachable = Number(/"skipped:DestinationUnreachable":(\d+)/.exec(run.stdout)?.[1] ?? 0);
  assert.ok(unreachable > 0, `objects bound for the stopped ${down} were skipped: ${run.stdout}`);
  assert.match(run.stdout, /^log: \S+\.jsonl$/m);
  assert.match(
    out((l) => l.includes('status --watch')).stdout,
    /left 0, 0\.0 obj\/s 0\.0 MB\/s, ETA done, skipped:DestinationUnreachable=/,
  );
  const listed = out((l) => l.includes('--objects'))
    .stdout.trim()
    .split('\n');
  assert.equal(listed.length, unreachable + 1, listed.join('\n'));
  for (const l of listed.slice(1))
    assert.match(
      l,
      new RegExp(
        `\\t${NODE.replace(/\./g, '\\.')}\\t${down!.replace(/\./g, '\\.')}\\tskipped\\tDestinationUnreachable\\t`,
      ),
    );
  const retry = out((l) => l.startsWith('remora rebalance retry'));
  assert.match(retry.stdout, new RegExp(`claimed ${unreachable}: \\{"complete":${unreachable}\\}`));
  assert.match(
    out((l) => l.startsWith('remora rebalance verify')).stdout,
    new RegExp(`^SAFE TO REMOVE ${NODE.replace(/\./g, '\\.')}:`, 'm'),
  );

  // The independent check, on the nodes' files.
  assert.deepEqual(
    await durabilityViolations(d, baseline),
    [],
    'every copy present with its MD5, no fewer datacenters',
  );
  assert.deepEqual(await disagreements(d), []);
  const after = await liveObjectRecords(d);
  assert.deepEqual(
    after.filter((r) => r.value.sharks.some((s) => s.manta_storage_id === NODE)).map((r) => r.key),
    [],
    'no live record names the evacuated node',
  );
  const nodeRoot = d.nodes.get(NODE)!.root;
  for (const r of after) {
    assert.equal(
      r.value.sharks.length,
      before.find((b) => b.key === r.key)!.value.sharks.length,
      `${r.key}: as many copies`,
    );
    assert.ok(
      !fs.existsSync(path.join(nodeRoot, r.value.creator || r.value.owner, r.value.objectId)),
      `${r.key}: no copy left on ${NODE}`,
    );
  }
  assert.equal(after.length, before.length);
  // And the objects read back through the front door.
  for (const r of after.filter((x) => x.key.startsWith(`/${owner}/public/`)))
    assert.equal(
      crypto
        .createHash('md5')
        .update(await alice.get(r.key.replace(`/${owner}/`, '/alice/')))
        .digest('base64'),
      r.value.contentMD5,
    );
});
