/**
 * Dumps benchmark (issue 3): for 1M and 3M `manta` rows on one shard, snapshot rows/s, unpack
 * rows/s, output bytes and peak RSS of each phase (each in its own process), and the RSS
 * ratio 3M/1M. Targets on a 2-core machine: snapshot ≥ 300k rows/s, unpack ≥ 200k rows/s,
 * RSS < 500 MB, ratio ≤ 1.2. Rows are loaded with COPY FROM STDIN, libmanta-shaped values.
 *
 *   npm run bench                      (all benches)
 *   npx tsx bench/dumps.bench.ts       (this one; REMORA_BENCH_ROWS=200000,600000 to scale down)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { defaultConfig } from '../src/config/config.js';
import { MetadataTier } from '../src/metadata/metadata-tier.js';
import { startEmbeddedPostgres } from '../src/metadata/postgres-server.js';
import { freePort } from '../test/helpers/net.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SIZES = (process.env.REMORA_BENCH_ROWS ?? '1000000,3000000').split(',').map(Number);

const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');

/** COPY text rows of `manta`: 1 directory per 100 objects, 2 sharks, one link per 20 objects. */
export function* mantaRows(n: number): Generator<string> {
  const owners = Array.from({ length: 50 }, (_, i) => `4ebc3ff1-dd83-40a6-bc38-${hex(i, 12)}`);
  const batch: string[] = [];
  for (let i = 0; i < n; i++) {
    const owner = owners[i % owners.length]!;
    const dirname = `/${owner}/stor/d${Math.floor(i / 100)}`;
    const name = `obj-${i}`;
    const key = `${dirname}/${name}`;
    const objectId = `0b9f6d3a-7f3c-4f0e-9d1e-${hex(i % 20 === 19 ? i - 1 : i, 12)}`;
    const mtime = 1_700_000_000_000 + i;
    const value = JSON.stringify({
      dirname,
      key,
      headers: {},
      mtime,
      name,
      creator: owner,
      owner,
      roles: [],
      type: 'object',
      contentLength: (i * 7919) % 1_000_000,
      contentMD5: 'rL0Y20zC+Fzt72VPzMSk2A==',
      contentType: 'application/octet-stream',
      etag: objectId,
      objectId,
      sharks: [
        { datacenter: 'dc1', manta_storage_id: '1.stor.dc1.remora.local' },
        { datacenter: 'dc2', manta_storage_id: '2.stor.dc2.remora.local' },
      ],
      ...(i % 20 === 19 ? { createdFrom: `${dirname}/obj-${i - 1}` } : {}),
      vnode: i % 8192,
    });
    batch.push(
      `${i + 1}\t${key}\t${value}\tABCDEF01\t${mtime}\t${i % 8192}\t${dirname}\t${name}\t${owner}\t${objectId}\tobject\n`,
    );
    if (batch.length === 5000) yield batch.splice(0).join('');
  }
  if (batch.length) yield batch.join('');
}

export async function load(url: string, n: number): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const t = Date.now();
  try {
    await client.query('TRUNCATE manta, manta_delete_log');
    await pipeline(
      Readable.from(mantaRows(n)),
      client.query(
        copyFrom(
          'COPY manta (_id, _key, _value, _etag, _mtime, _vnode, dirname, name, owner, objectid, type) FROM STDIN',
        ),
      ),
    );
    await client.query('VACUUM ANALYZE manta');
    // Flush the load's ~1 GB of dirty pages now, so the timed snapshot does not share the
    // machine with the checkpointer writing them (a production shard is not mid-bulk-load).
    await client.query('CHECKPOINT');
  } finally {
    await client.end();
  }
  return (Date.now() - t) / 1000;
}

interface PhaseResult {
  path?: string;
  partitions?: number;
  rows: number;
  bytes: number;
  seconds: number;
  maxRssMB: number;
}

function phase(args: string[]): PhaseResult {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', path.join(HERE, 'dumps.phase.ts'), ...args],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as PhaseResult;
}

export default async function run(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-bench-dumps-'));
  const server = await startEmbeddedPostgres(path.join(dir, 'pg'), await freePort());
  const prefix = 'benchdumps';
  const stateDir = path.join(dir, 'state');
  const base = defaultConfig(stateDir);
  const config = { ...base, postgres: { ...base.postgres, url: server.url, databasePrefix: prefix } };
  const rss: number[] = [];
  try {
    const tier = await MetadataTier.open(config, server.url);
    const shard = tier.indexShards[0]!;
    await tier.close();
    for (const n of SIZES) {
      const loadSecs = await load(shard.url, n);
      const snap = phase(['snapshot', server.url, prefix, stateDir, shard.name]);
      const dump = path.join(stateDir, 'objects', ...snap.path!.split('/').filter(Boolean));
      // P as the pipeline picks it (automatic, from the snapshot's row count).
      const unpack = phase(['unpack', dump, stateDir, 'auto', String(snap.rows)]);
      const peak = Math.max(snap.maxRssMB, unpack.maxRssMB);
      rss.push(peak);
      const f = (x: number) => Math.round(x).toLocaleString('en-US');
      process.stdout.write(
        `dumps ${f(n)} manta rows (loaded in ${loadSecs.toFixed(1)} s):\n` +
          `  snapshot  ${f(snap.rows / snap.seconds)} rows/s  (${snap.seconds.toFixed(1)} s, dump ${(snap.bytes / 1e6).toFixed(1)} MB gz, peak RSS ${f(snap.maxRssMB)} MB)\n` +
          `  unpack    ${f(unpack.rows / unpack.seconds)} rows/s  (${unpack.seconds.toFixed(1)} s, ${unpack.partitions} partitions (auto), parquet ${(unpack.bytes / 1e6).toFixed(1)} MB, peak RSS ${f(unpack.maxRssMB)} MB)\n`,
      );
      fs.rmSync(path.join(stateDir, 'objects'), { recursive: true, force: true });
    }
    if (rss.length >= 2)
      process.stdout.write(
        `dumps peak RSS ratio ${SIZES.at(-1)! / SIZES[0]!}x rows: ${(rss.at(-1)! / rss[0]!).toFixed(2)} (target ≤ 1.2)\n`,
      );
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await run();
