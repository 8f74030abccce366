/**
 * Muskie uploads each finished hour of audit log to
 * `/poseidon/stor/logs/muskie/YYYY/MM/DD/HH/<instance>.log` (MANTA-REFERENCE §3.6 "Request"):
 * the input of request metering. The front door appends to a local spool of hourly files;
 * this moves every hour that has ended into the object store, then removes the spool file.
 * The current hour is never published, so a line is never split across two objects.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ObjectStore } from '../objectstore/object-store.js';
import { hourPath } from '../frontdoor/audit-log.js';

export const MUSKIE_LOG_ROOT = '/poseidon/stor/logs/muskie';

export async function publishFinishedHours(
  spoolDir: string,
  store: ObjectStore,
  now: Date,
): Promise<string[]> {
  const current = hourPath(now);
  const published: string[] = [];
  for (const hourDir of listHourDirs(spoolDir)) {
    if (hourDir >= current) continue;
    const dir = path.join(spoolDir, hourDir);
    for (const f of fs.readdirSync(dir)) {
      const target = `${MUSKIE_LOG_ROOT}/${hourDir}/${f}`;
      await store.put(target, fs.createReadStream(path.join(dir, f)), {
        'content-type': 'application/x-json-stream',
      });
      fs.rmSync(path.join(dir, f));
      published.push(target);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return published;
}

/** `YYYY/MM/DD/HH` directories under the spool, sorted (lexical = chronological). */
function listHourDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string, depth: number) => {
    const abs = path.join(root, rel);
    if (!fs.existsSync(abs)) return;
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      if (!e.isDirectory() || !/^\d+$/.test(e.name)) continue;
      const next = rel ? `${rel}/${e.name}` : e.name;
      if (depth === 3) out.push(next);
      else walk(next, depth + 1);
    }
  };
  walk('', 0);
  return out.sort();
}
