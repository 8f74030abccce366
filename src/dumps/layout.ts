/**
 * Where dumps, listings and chunks live in the object store. All times are UTC.
 *
 *   /poseidon/stor/manatee_backups/<shard>/YYYY/MM/DD/HH/moray-YYYY-MM-DD-HH-MM-SS.gz   dump (MANTA-REFERENCE §2.1)
 *   /poseidon/stor/manatee_backups/<shard>/YYYY/MM/DD/HH/<table>-YYYY-MM-DD-HH-MM-SS.gz  optional {"entry"} objects (§2.2)
 *   /poseidon/stor/mako/<manta_storage_id>                                             node listing (§2.4)
 *   /poseidon/stor/remora/unpacked/YYYY/MM/DD/<source>/manifest.json                   commit pointer of one source
 *   /poseidon/stor/remora/unpacked/YYYY/MM/DD/<source>/<runId>/<table>/pPPPP-SSS[-largeN].parquet chunks
 *   /poseidon/stor/remora/unpacked/YYYY/MM/DD/<source>/<runId>/manifest.json            staged manifest (pipeline)
 *   /poseidon/stor/remora/unpacked/YYYY/MM/DD/<node>/<runId>/listing                    staged raw listing (pipeline)
 *
 * `<source>` is a shard name (`2.moray.remora.local`) or a storage node id (`1.stor.dc1.remora.local`);
 * the day is the UTC day of the source's snapshot instant (or listing start).
 */

export const BACKUPS_ROOT = '/poseidon/stor/manatee_backups';
export const MAKO_ROOT = '/poseidon/stor/mako';
export const UNPACKED_ROOT = '/poseidon/stor/remora/unpacked';

import { dayOf } from '../core/days.js';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `YYYY-MM-DD-HH-MM-SS`, as manatee names dumps. */
export function stampOf(at: Date): string {
  return `${dayOf(at)}-${pad(at.getUTCHours())}-${pad(at.getUTCMinutes())}-${pad(at.getUTCSeconds())}`;
}

function hourDir(shard: string, at: Date): string {
  return `${BACKUPS_ROOT}/${shard}/${at.getUTCFullYear()}/${pad(at.getUTCMonth() + 1)}/${pad(at.getUTCDate())}/${pad(at.getUTCHours())}`;
}

export function backupPath(shard: string, at: Date): string {
  return `${hourDir(shard, at)}/moray-${stampOf(at)}.gz`;
}

/** sqltojson's per-table object next to the dump: `<table>-<suffix of the dump name>` (§2.2). */
export function entryObjectPath(shard: string, at: Date, table: string): string {
  return `${hourDir(shard, at)}/${table}-${stampOf(at)}.gz`;
}

export function makoPath(storageId: string): string {
  return `${MAKO_ROOT}/${storageId}`;
}

/** `YYYY-MM-DD` → `/poseidon/stor/remora/unpacked/YYYY/MM/DD`. */
export function unpackedDayDir(day: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) throw new Error(`day must be YYYY-MM-DD, got ${day}`);
  return `${UNPACKED_ROOT}/${m[1]}/${m[2]}/${m[3]}`;
}

export function sourceManifestPath(day: string, source: string): string {
  return `${unpackedDayDir(day)}/${source}/manifest.json`;
}

export function chunkPath(
  day: string,
  source: string,
  runId: string,
  table: string,
  partition: number,
  segment: number,
  /** `-large`, `-large1`, …: the segment's large rows of the partition (chunk-writer.ts LARGE_ROW_BYTES). */
  suffix = '',
): string {
  return `${unpackedDayDir(day)}/${source}/${runId}/${table}/p${pad(partition, 4)}-${pad(segment, 3)}${suffix}.parquet`;
}

const STAMP_RE = /(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})/;

/**
 * The shard and instant a dump path names: `/poseidon/stor/manatee_backups/<shard>/…/moray-<stamp>.gz`,
 * or any file whose name carries a `YYYY-MM-DD-HH-MM-SS` stamp (the unpacked originals,
 * e.g. `2012-10-05-16-00-02-manta`).
 */
export function parseDumpName(p: string): { shard?: string; at?: Date } {
  const out: { shard?: string; at?: Date } = {};
  if (p.startsWith(`${BACKUPS_ROOT}/`)) out.shard = p.slice(BACKUPS_ROOT.length + 1).split('/')[0];
  const base = p.slice(p.lastIndexOf('/') + 1);
  const m = STAMP_RE.exec(base);
  if (m) out.at = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  return out;
}
