/**
 * The node's manifest ("mako dump", MANTA-REFERENCE §2.4): what
 * `find /manta -type f -printf '%p\t%s\t%T@\t%k\n'` printed, with the fractional part of the
 * mtime stripped (MANTA-3854) and the physical-KB column (MANTA-2410):
 *
 *   /manta/<path>\t<logical bytes>\t<mtime epoch seconds, integer>\t<physical KB>
 *
 * Like the original it lists everything (tombstones, nginx_temp, stray files); consumers filter.
 * The walk is depth-first with one open directory handle per level, so memory is bounded by the
 * tree's depth, not by the number of files or owners (RFD 16 problem 5: never build the listing).
 * Names containing a tab, newline or backslash would break the line format (the original printed
 * them raw); here they are escaped as `\t`, `\n`, `\\`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { mantaPath } from './storage-paths.js';

export interface ManifestEntry {
  /** `/manta/...` */
  path: string;
  bytes: number;
  /** mtime, integer epoch seconds (floor, as gawk's int() after MANTA-3854). */
  mtime: number;
  /** Disk space in 1 KiB blocks, as find's `%k` (st_blocks × 512 / 1024, rounded up). */
  kb: number;
}

export interface ManifestListing {
  /** ISO instant the walk started: the manifest's `m-mako-dump-time` (MANTA-2955). */
  startedAt: string;
  entries: AsyncIterable<ManifestEntry>;
}

/** Start a listing of root. `now` is injectable so tests can pin `startedAt`. */
export function listManifest(root: string, now: () => number = Date.now): ManifestListing {
  const startedAt = new Date(now()).toISOString();
  const absRoot = path.resolve(root);
  return { startedAt, entries: walk(absRoot, absRoot) };
}

async function* walk(root: string, dir: string): AsyncGenerator<ManifestEntry> {
  let handle: fs.Dir;
  try {
    handle = await fs.promises.opendir(dir);
  } catch (err) {
    // A directory removed while we walk (a tombstone day purged) is not an error of the listing.
    if (isVanished(err) && dir !== root) return;
    throw err;
  }
  for await (const e of handle) {
    const p = path.join(dir, e.name);
    // find -type f: regular files only; never follow symlinks (a link could point out of root).
    if (e.isDirectory()) {
      yield* walk(root, p);
    } else if (e.isFile()) {
      let st: fs.Stats;
      try {
        st = await fs.promises.lstat(p);
      } catch (err) {
        if (isVanished(err)) continue; // renamed or purged since readdir
        throw err;
      }
      yield { path: mantaPath(root, p), bytes: st.size, mtime: Math.floor(st.mtimeMs / 1000), kb: kbOf(st) };
    }
  }
}

function kbOf(st: fs.Stats): number {
  return Math.ceil((st.blocks * 512) / 1024);
}

function isVanished(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function escapeManifestPath(p: string): string {
  return p.replace(/[\\\t\n]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : '\\n'));
}

export function formatManifestLine(e: ManifestEntry): string {
  return `${escapeManifestPath(e.path)}\t${e.bytes}\t${e.mtime}\t${e.kb}\n`;
}

/** Parse one manifest line (3- or 4-column, MANTA-2410); undefined when malformed. */
export function parseManifestLine(line: string): ManifestEntry | undefined {
  const cols = line.split('\t');
  if (cols.length !== 3 && cols.length !== 4) return undefined;
  const [p, bytes, mtime, kb] = cols;
  const nums = [bytes, mtime, kb ?? '0'].map((x) => (/^\d+(\.\d+)?$/.test(x!) ? Math.floor(Number(x)) : NaN));
  if (!p || nums.some((n) => Number.isNaN(n))) return undefined;
  return { path: p, bytes: nums[0]!, mtime: nums[1]!, kb: nums[2]! };
}

/** Sum of logical bytes under root: the starting point of a capped node's usage counter. */
export async function bytesUnder(root: string): Promise<number> {
  let total = 0;
  for await (const e of listManifest(root).entries) total += e.bytes;
  return total;
}
