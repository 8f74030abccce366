/**
 * The tombstone tree's requests on a storage node: what mako's cron scripts did on the node
 * itself (mako/v1 bin/mako_gc.sh: `ls | sort | head -n -N` then `rm -rf`), as requests a job can
 * make from anywhere, plus the way back an operator needs within the retention:
 *
 *   GET    /tombstone                      the days: `{"days":[{"day","files","bytes"}]}`, oldest first
 *   DELETE /tombstone/YYYY-MM-DD           purge one day: `{"day","files","bytes"}` freed; 404 when absent
 *   MOVE   /tombstone/YYYY-MM-DD/<oid>     restore, `Destination: /<owner>/<oid>` → 204; 404 when that
 *                                          day does not hold it; 412 EtagConflict when a copy is already
 *                                          in place (never overwritten: moray's answer to a put with
 *                                          `etag: null` on an existing key, the same "must not exist")
 *
 * All three need the internal credential (the listing names objectIds: what a caller would need
 * to aim a request), checked by the router before anything here. Then: the method (405 with
 * `Allow`), then the exact path shape for that method (400 InvalidPath), as for copies.
 */
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { RemoraError } from '../core/errors.js';
import type { HandlerContext } from './storage-handlers.js';
import {
  copyFile,
  isCalendarDay,
  parseRestoreDestination,
  parseTombstoneDayTarget,
  parseTombstoneFileTarget,
  TOMBSTONE_DIR,
  TOMBSTONE_PATH,
  tombstoneDayDir,
  tombstoneFile,
  invalidPath,
  isTombstoneTarget,
} from './storage-paths.js';

export { isTombstoneTarget };

export const TOMBSTONE_ALLOW = 'GET, DELETE, MOVE';

export interface TombstoneDayUsage {
  day: string;
  /** Regular files in the day's directory (at any depth; there should be none below it). */
  files: number;
  /** Their logical bytes. */
  bytes: number;
}

/** A removal that keeps finding new entries (something keeps moving copies in) gives up after this. */
const PURGE_PASSES = 3;

export async function routeTombstone(
  ctx: HandlerContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: string,
): Promise<void> {
  switch (req.method) {
    case 'GET':
      if (target !== TOMBSTONE_PATH) throw invalidPath('GET lists the tombstone days at /tombstone', target);
      return sendJson(res, 200, { days: await listTombstoneDays(ctx.root) });
    case 'DELETE':
      return sendJson(res, 200, await purgeTombstoneDay(ctx, parseTombstoneDayTarget(target)));
    case 'MOVE':
      return restoreCopy(ctx, req, res, parseTombstoneFileTarget(target));
    default:
      throw new RemoraError(
        'MethodNotAllowed',
        `${req.method ?? '?'} is not supported on the tombstone tree (allowed: ${TOMBSTONE_ALLOW})`,
        { details: { allow: TOMBSTONE_ALLOW } },
      );
  }
}

/** Every tombstone day directory with its files and bytes. Names that are not calendar days are left out. */
export async function listTombstoneDays(root: string): Promise<TombstoneDayUsage[]> {
  const dir = path.join(root, TOMBSTONE_DIR);
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return [];
    throw err;
  }
  const days = entries
    .filter((e) => e.isDirectory() && isCalendarDay(e.name))
    .map((e) => e.name)
    .sort();
  const out: TombstoneDayUsage[] = [];
  for (const day of days) out.push({ day, ...(await usageUnder(tombstoneDayDir(root, day))) });
  return out;
}

/**
 * Remove one day's directory and everything in it, counting what it freed. Symlinks are removed,
 * never followed. An entry gone meanwhile (restored by an operator) is not counted. A capped
 * node's usage counter goes down by the bytes freed.
 */
async function purgeTombstoneDay(ctx: HandlerContext, day: string): Promise<TombstoneDayUsage> {
  const dir = tombstoneDayDir(ctx.root, day);
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(dir);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') throw noSuchDay(day);
    throw err;
  }
  if (!st.isDirectory()) throw noSuchDay(day);
  const freed = { files: 0, bytes: 0 };
  for (let pass = 1; ; pass++) {
    const r = await removeContents(dir);
    freed.files += r.files;
    freed.bytes += r.bytes;
    try {
      await fs.promises.rmdir(dir);
      break;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT') break;
      if (code !== 'ENOTEMPTY' || pass >= PURGE_PASSES) throw err;
    }
  }
  ctx.capacity.commit(-freed.bytes);
  await ctx.files.fsync(path.join(ctx.root, TOMBSTONE_DIR), 'r'); // the removal itself survives a crash
  return { day, ...freed };
}

/**
 * MOVE a tombstoned copy back into place. A hard link then an unlink, not a rename: `link`
 * fails with EEXIST when a copy is already there, atomically, where a rename would replace it.
 * A crash between the two leaves the copy in place and its tombstone too (purged later).
 */
async function restoreCopy(
  ctx: HandlerContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  src: { day: string; objectId: string },
): Promise<void> {
  const destHeader = req.headers.destination;
  const dest = parseRestoreDestination(Array.isArray(destHeader) ? destHeader[0] : destHeader, src.objectId);
  const from = tombstoneFile(ctx.root, src.day, src.objectId);
  const to = copyFile(ctx.root, dest);
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(from);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw notTombstoned(src);
    throw err;
  }
  if (!st.isFile()) throw notTombstoned(src);
  await fs.promises.mkdir(path.dirname(to), { recursive: true });
  try {
    await fs.promises.link(from, to);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EEXIST')
      throw new RemoraError(
        'EtagConflict',
        `a copy /${dest.owner}/${dest.objectId} is already in place: a restore never overwrites`,
        { details: { owner: dest.owner, objectId: dest.objectId } },
      );
    if (code === 'ENOENT') throw notTombstoned(src); // restored or purged since the lstat
    throw err;
  }
  await ctx.files.fsync(path.dirname(to), 'r');
  await fs.promises.unlink(from);
  await ctx.files.fsync(path.dirname(from), 'r');
  res.writeHead(204);
  res.end();
}

async function usageUnder(dir: string): Promise<{ files: number; bytes: number }> {
  const out = { files: 0, bytes: 0 };
  let handle: fs.Dir;
  try {
    handle = await fs.promises.opendir(dir);
  } catch (err) {
    if (vanished(err)) return out; // purged while we listed
    throw err;
  }
  for await (const e of handle) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const sub = await usageUnder(p);
      out.files += sub.files;
      out.bytes += sub.bytes;
    } else if (e.isFile()) {
      try {
        out.bytes += (await fs.promises.lstat(p)).size;
        out.files++;
      } catch (err) {
        if (!vanished(err)) throw err;
      }
    }
  }
  return out;
}

/** Remove everything below `dir` (depth first, one open handle per level); what regular files it freed. */
async function removeContents(dir: string): Promise<{ files: number; bytes: number }> {
  const out = { files: 0, bytes: 0 };
  let handle: fs.Dir;
  try {
    handle = await fs.promises.opendir(dir);
  } catch (err) {
    if (vanished(err)) return out;
    throw err;
  }
  for await (const e of handle) {
    const p = path.join(dir, e.name);
    try {
      if (e.isDirectory()) {
        const sub = await removeContents(p);
        out.files += sub.files;
        out.bytes += sub.bytes;
        await fs.promises.rmdir(p);
      } else {
        const size = e.isFile() ? (await fs.promises.lstat(p)).size : 0;
        await fs.promises.unlink(p);
        if (e.isFile()) {
          out.files++;
          out.bytes += size;
        }
      }
    } catch (err) {
      if (!vanished(err)) throw err;
    }
  }
  return out;
}

function vanished(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function noSuchDay(day: string): RemoraError {
  return new RemoraError('ObjectNotFound', `no tombstone directory ${day} on this node`, {
    details: { day },
  });
}

function notTombstoned(src: { day: string; objectId: string }): RemoraError {
  return new RemoraError('ObjectNotFound', `no tombstoned copy ${src.day}/${src.objectId} on this node`, {
    details: { day: src.day, objectId: src.objectId },
  });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
