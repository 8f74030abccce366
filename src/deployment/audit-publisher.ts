/**
 * Muskie uploads each finished hour of audit log to
 * `/poseidon/stor/logs/muskie/YYYY/MM/DD/HH/<instance>.log` (MANTA-REFERENCE §3.6 "Request"):
 * the input of request metering. The front door appends to a local spool of hourly files;
 * this moves every hour that has ended into the object store, then removes the spool file.
 * The current hour is never published, so a line is never split across two objects.
 *
 * With a registry (src/metadata/frontdoor-hours.repository.ts) it also marks each hour
 * published, and publishes an EMPTY log for an hour the instance was up but served nothing:
 * request metering waits for the log of every instance that was up, and an empty object is
 * how "no requests" differs from "not uploaded yet" (docs/metering.md "Late logs").
 *
 * An object already at the hour's name (the instance restarted within the hour and published
 * a first part) is never overwritten: the next part goes to `<instance>.1.log`, `.2.log`, ….
 * A spool file whose bytes are already published (a crash between the upload and the removal
 * of the spool file) is removed without a second upload.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ObjectStore } from '../objectstore/object-store.js';
import { hourKeyOf, hourPath, instanceOfLog, MUSKIE_LOG_ROOT } from '../frontdoor/audit-log.js';
import type { Queryable } from '../metadata/moray.repository.js';
import {
  forgetOldPublishedHours,
  markHourPublished,
  unpublishedHours,
} from '../metadata/frontdoor-hours.repository.js';

export { MUSKIE_LOG_ROOT };

const LOG_META = { 'content-type': 'application/x-json-stream' };

/** Where the front door instance records itself (null: no registry, e.g. a bare test). */
export interface LogRegistry {
  db: Queryable;
  instance: string;
}

export async function publishFinishedHours(
  spoolDir: string,
  store: ObjectStore,
  now: Date,
  registry?: LogRegistry,
): Promise<string[]> {
  const current = hourPath(now);
  const published: string[] = [];
  for (const hourDir of listHourDirs(spoolDir)) {
    if (hourDir >= current) continue;
    const dir = path.join(spoolDir, hourDir);
    for (const f of fs.readdirSync(dir)) {
      const file = path.join(dir, f);
      const target = await uploadOnce(store, `${MUSKIE_LOG_ROOT}/${hourDir}/`, f, file);
      if (target) published.push(target);
      fs.rmSync(file);
      if (registry) await markHourPublished(registry.db, instanceOfLog(f), hourKeyOfPath(hourDir));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (registry) {
    for (const hour of await unpublishedHours(registry.db, registry.instance, hourKeyOf(now))) {
      const target = `${MUSKIE_LOG_ROOT}/${hour.slice(0, 10).replaceAll('-', '/')}/${hour.slice(11, 13)}/${registry.instance}.log`;
      if (!(await store.head(target))) {
        await store.put(target, '', LOG_META);
        published.push(target);
      }
      await markHourPublished(registry.db, registry.instance, hour);
    }
    // The registry's retention (one row per instance per hour otherwise grows for ever).
    await forgetOldPublishedHours(registry.db, now);
  }
  return published;
}

/** `YYYY/MM/DD/HH` → `YYYY-MM-DDTHH`. */
function hourKeyOfPath(hourDir: string): string {
  const [y, m, d, h] = hourDir.split('/');
  return `${y}-${m}-${d}T${h}`;
}

/** Upload a spool file to the first free name; undefined when its bytes are already there. */
async function uploadOnce(
  store: ObjectStore,
  dir: string,
  name: string,
  file: string,
): Promise<string | undefined> {
  const base = name.replace(/\.log$/, '');
  const sha256 = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  for (let n = 0; ; n++) {
    const target = `${dir}${n === 0 ? name : `${base}.${n}.log`}`;
    const head = await store.head(target);
    if (head?.sha256 === sha256) return undefined;
    if (head) continue;
    await store.put(target, fs.createReadStream(file), LOG_META);
    return target;
  }
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
