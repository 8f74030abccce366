/**
 * The tombstone tree's requests on a storage node: what mako's cron scripts did on the node
 * itself (mako/v1 bin/mako_gc.sh: `ls | sort | head -n -N` then `rm -rf`), as requests a job can
 * make from anywhere, plus the way back an operator needs within the retention:
 *
 *   GET    /tombstone                      the days: `{"days":[{"day","files","bytes"}]}`, oldest first
 *   DELETE /tombstone/YYYY-MM-DD           purge one day: `{"day","files","bytes"}` freed; 404 when absent
 *   POST   /tombstone/YYYY-MM-DD           tombstone a batch of copies: body `{"copies":[{"owner","objectId"}]}`
 *                                          (at most MAX_TOMBSTONE_BATCH, MAX_TOMBSTONE_BATCH_BYTES), answer
 *                                          200 `{"day","results":[{"owner","objectId","result":"moved"|"absent"|
 *                                          "error",…}]}` in request order (see tombstoneBatch below)
 *   MOVE   /tombstone/YYYY-MM-DD/<oid>     restore, `Destination: /<owner>/<oid>` → 204; 404 when that
 *                                          day does not hold it; 412 EtagConflict when a copy is already
 *                                          in place (never overwritten: moray's answer to a put with
 *                                          `etag: null` on an existing key, the same "must not exist")
 *
 * All four need the internal credential (the listing names objectIds: what a caller would need
 * to aim a request), checked by the router before anything here. Then: the method (405 with
 * `Allow`), then the exact path shape for that method (400 InvalidPath), as for copies.
 */
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { RemoraError } from '../core/errors.js';
import { type HandlerContext, readBoundedBody } from './storage-handlers.js';
import {
  copyFile,
  type CopyPath,
  isCalendarDay,
  parseCopyTarget,
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

export const TOMBSTONE_ALLOW = 'GET, POST, DELETE, MOVE';

/** Copies one batched tombstone request may name (a rebalance claim batch is 64 by default). */
export const MAX_TOMBSTONE_BATCH = 1024;
/** Bytes of one batch's body: room for MAX_TOMBSTONE_BATCH entries (~90 bytes each) with spacing. */
export const MAX_TOMBSTONE_BATCH_BYTES = 256 * 1024;

/** One copy's answer in a batch: the single MOVE's 204 / 404 / other error, per copy. */
export type TombstoneBatchResult =
  | (CopyPath & { result: 'moved' | 'absent' })
  | (CopyPath & { result: 'error'; code: string; message: string });

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
    case 'POST': {
      const day = parseTombstoneDayTarget(target);
      const copies = parseBatch(await readBoundedBody(req, MAX_TOMBSTONE_BATCH_BYTES, batchTooLarge));
      return sendJson(res, 200, { day, results: await tombstoneBatch(ctx, day, copies) });
    }
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

/**
 * The single MOVE (storage-handlers.ts handleMove) for many copies at once, with the same
 * durability and fewer fsyncs: rename each copy into `/tombstone/<day>/`, then fsync that
 * directory once and each source (owner) directory once, and only then answer. A copy is
 * 'moved' only when its rename and both fsyncs succeeded; 'absent' when it was not there (the
 * single MOVE's 404); 'error' otherwise (its rename or its source directory's fsync failed). A
 * failed fsync of the tombstone day fails the whole request: no copy is answered 'moved'.
 * A rename is atomic, so a node that dies mid-batch leaves each copy in place or in the
 * tombstone directory, never both and never neither.
 */
export async function tombstoneBatch(
  ctx: HandlerContext,
  day: string,
  copies: CopyPath[],
): Promise<TombstoneBatchResult[]> {
  const destDir = tombstoneDayDir(ctx.root, day);
  await fs.promises.mkdir(destDir, { recursive: true });
  const results: TombstoneBatchResult[] = [];
  const renamedFrom = new Map<string, number[]>(); // source directory → indexes of copies moved out of it
  for (const c of copies) {
    const src = copyFile(ctx.root, c);
    const r = await renameOne(ctx, src, tombstoneFile(ctx.root, day, c.objectId));
    if (r === 'moved') {
      const dir = path.dirname(src);
      renamedFrom.set(dir, [...(renamedFrom.get(dir) ?? []), results.length]);
      ctx.md5.delete(src);
    }
    results.push(
      typeof r === 'string' ? { ...c, result: r } : { ...c, result: 'error', ...describeFsError(r.failed) },
    );
  }
  if (renamedFrom.size === 0) return results;
  await ctx.files.fsync(destDir, 'r');
  await Promise.all(
    [...renamedFrom].map(async ([dir, indexes]) => {
      try {
        await ctx.files.fsync(dir, 'r');
      } catch (err) {
        for (const i of indexes) results[i] = { ...copies[i]!, result: 'error', ...describeFsError(err) };
      }
    }),
  );
  return results;
}

async function renameOne(
  ctx: HandlerContext,
  src: string,
  dest: string,
): Promise<'moved' | 'absent' | { failed: unknown }> {
  try {
    const st = await fs.promises.lstat(src);
    if (!st.isFile()) return 'absent'; // the single MOVE's 404 for anything but a regular file
  } catch (err) {
    if (vanished(err) || (err as { code?: string }).code === 'EISDIR') return 'absent';
    return { failed: err };
  }
  try {
    await ctx.files.rename(src, dest);
    return 'moved';
  } catch (err) {
    // 'absent' only when the copy is really gone (moved meanwhile): a rename that failed for any
    // other reason (the day's directory purged meanwhile, a directory in the way) left it in place.
    return (await exists(src)) ? { failed: err } : 'absent';
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.promises.lstat(p);
    return true;
  } catch (err) {
    if (vanished(err)) return false;
    throw err;
  }
}

function describeFsError(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  return {
    code: typeof e.code === 'string' ? e.code : 'Internal',
    message: typeof e.message === 'string' ? e.message : String(err),
  };
}

/** `{"copies":[{"owner","objectId"}…]}`: every entry a valid copy, no objectId twice, at most MAX_TOMBSTONE_BATCH. */
function parseBatch(text: string): CopyPath[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badBatch('the body is not JSON');
  }
  const list = (body as { copies?: unknown } | null)?.copies;
  if (!Array.isArray(list)) throw badBatch('the body must be {"copies":[{"owner","objectId"},…]}');
  if (list.length > MAX_TOMBSTONE_BATCH) throw batchTooLarge(`${list.length} copies`);
  const seen = new Set<string>();
  return list.map((entry, i) => {
    const e = entry as { owner?: unknown; objectId?: unknown } | null;
    if (typeof e?.owner !== 'string' || typeof e.objectId !== 'string')
      throw badBatch(`copies[${i}] must be {"owner","objectId"} (strings)`);
    let copy: CopyPath;
    try {
      copy = parseCopyTarget(`/${e.owner}/${e.objectId}`);
    } catch {
      throw badBatch(`copies[${i}] is not a copy path: owner and objectId are lower-case UUIDs`);
    }
    // Tombstones are named by objectId alone: a second copy of the same objectId would replace the first.
    if (seen.has(copy.objectId)) throw badBatch(`copies[${i}]: objectId ${copy.objectId} is named twice`);
    seen.add(copy.objectId);
    return copy;
  });
}

function badBatch(why: string): RemoraError {
  return new RemoraError('BadRequest', `malformed tombstone batch: ${why}; nothing was moved`);
}

function batchTooLarge(what: string): RemoraError {
  return new RemoraError(
    'TombstoneBatchTooLarge',
    `a tombstone batch takes at most ${MAX_TOMBSTONE_BATCH} copies and ${MAX_TOMBSTONE_BATCH_BYTES} bytes ` +
      `(got ${what}); split it — nothing was moved`,
    { details: { maxCopies: MAX_TOMBSTONE_BATCH, maxBytes: MAX_TOMBSTONE_BATCH_BYTES } },
  );
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
