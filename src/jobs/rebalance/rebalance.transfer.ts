/**
 * Moving the bytes: the destination pulls. The runner sends each destination node a batch of
 * copies to fetch (`POST /pull`, storage/pull-handlers.ts): per copy its record's size and MD5
 * and its sources in order. The node GETs each copy from its first good source straight onto
 * its disk, checks size and MD5 before anything is committed, fsyncs it, renames it into place,
 * fsyncs each directory once for the batch, and only then answers (mako_rebalance.js ran on the
 * destination and pulled from `oldShark`; the Rust rebalancer's agent took an assignment of ≤ 50
 * tasks POSTed to the destination, MANTA-REFERENCE §3.5, §8). So a truncated or corrupted
 * transfer is never committed (mola's Md5Mismatch, MANTA-5212), a killed runner or node leaves no
 * partial file (the node discards the temp file, and wipes its temp directory at start), and no
 * byte of a copy passes through the runner.
 *
 * Sources, in order: the old copy, then every other copy the records list. An MD5 mismatch or an
 * unreadable source moves on to the next one. The outcome of each copy keeps the single-object
 * copy's classification: any MD5 mismatch → MD5Mismatch, no source listed → NoSource, every
 * source failing otherwise → SourceOtherError; the destination out of room →
 * DestinationInsufficientSpace; the destination failing in any other way (unknown address,
 * refused connection, an error answer, a write that failed) → DestinationUnreachable, with no
 * other source tried.
 */
import { ByteThrottle } from '../../storage/throttle.js';
import { Slots } from '../../core/concurrency.js';
import { RemoraError } from '../../core/errors.js';
import type { Shark } from '../../metadata/types.js';
import type { PullCopy, PullResult, StorageClient } from '../../storage/storage-client.js';
import { DEFAULT_PULL_CONCURRENCY } from '../../storage/pull-handlers.js';
import type { SkipReason } from './rebalance.types.js';

/** Resolves a manta_storage_id to its base URL (undefined: not a known, running node). */
export type NodeUrl = (id: string) => string | undefined;

export interface CopyRequest {
  objectId: string;
  copyOwner: string;
  md5: string;
  bytes: number;
  sources: Shark[];
  dest: Shark;
}

export type CopyResult = { ok: true; source: string } | { ok: false; reason: SkipReason; detail: string };

export interface Transfer {
  storage: StorageClient;
  nodeUrl: NodeUrl;
  /** Shared by every transfer of one runner (`--max-bytes-per-second`). */
  throttle?: ByteThrottle;
  /**
   * Pull requests in flight, shared by every copy step of one runner (its claim loops,
   * rebalance.run.ts): at most `pullLanes(concurrency)` requests at once over all of them.
   * Without it, each `copyObjects` call has its own lanes.
   */
  pullSlots?: Slots;
}

/** Pull requests sent at once for `concurrency` copies in flight (8 → 2 requests of 4 copies). */
export function pullLanes(concurrency: number): number {
  return Math.max(1, Math.ceil(concurrency / DEFAULT_PULL_CONCURRENCY));
}

/** Copies of one pull request at most (the Rust agent's assignments held ≤ 50 tasks). */
export const PULL_BATCH_OBJECTS = 128;
/** Bytes of one pull request at most, past its first copy: what one request holds up. */
export const PULL_BATCH_BYTES = 64 * 1024 * 1024;

interface Pending {
  index: number;
  req: CopyRequest;
  destUrl: string;
  /** The sources with an address, as sent, and their place in `req.sources`. */
  sent: { shark: Shark; url: string; at: number }[];
}

/**
 * Copy every object onto its destination, `concurrency` copies in flight overall: the copies are
 * grouped by destination, split into pull requests of at most PULL_BATCH_OBJECTS copies and
 * PULL_BATCH_BYTES (with a throttle, at most one second's worth past the first copy), and sent
 * ceil(concurrency / DEFAULT_PULL_CONCURRENCY) at a time, each fetched on the node
 * concurrency / that many copies at a time (8 → two requests of 4 at once); with `t.pullSlots`, those
 * lanes are shared with the runner's other claim loop. With a throttle, a request's bytes are
 * taken from it once the request has its lane, before it is sent. The result per request, in order.
 */
export async function copyObjects(
  t: Transfer,
  reqs: CopyRequest[],
  concurrency: number,
): Promise<CopyResult[]> {
  const results = new Array<CopyResult>(reqs.length);
  const byDest = new Map<string, Pending[]>();
  for (const [index, req] of reqs.entries()) {
    const destUrl = t.nodeUrl(req.dest.manta_storage_id);
    if (!destUrl) {
      results[index] = {
        ok: false,
        reason: 'DestinationUnreachable',
        detail: `${req.dest.manta_storage_id}: address unknown`,
      };
      continue;
    }
    const sent: Pending['sent'] = [];
    for (const [at, shark] of req.sources.entries()) {
      const url = t.nodeUrl(shark.manta_storage_id);
      if (url) sent.push({ shark, url, at });
    }
    if (sent.length === 0) {
      results[index] = noGoodSource(req, new Map());
      continue;
    }
    const p: Pending = { index, req, destUrl, sent };
    byDest.set(destUrl, [...(byDest.get(destUrl) ?? []), p]);
  }
  // Requests at once × copies fetched at once within each ≈ concurrency.
  const lanes = pullLanes(concurrency);
  const perRequest = Math.max(1, Math.ceil(concurrency / lanes));
  const pending = [...byDest.values()].reduce((n, ps) => n + ps.length, 0);
  // Enough requests to keep every lane busy, each as big as that allows.
  const maxObjects = Math.max(1, Math.min(PULL_BATCH_OBJECTS, Math.ceil(pending / lanes)));
  const maxBytes = t.throttle ? Math.min(PULL_BATCH_BYTES, t.throttle.bytesPerSecond) : PULL_BATCH_BYTES;
  const batches: Pending[][] = [];
  for (const ps of byDest.values()) {
    let cur: Pending[] = [];
    let bytes = 0;
    let ids = new Set<string>();
    for (const p of ps) {
      // A node refuses a request naming an objectId twice (two fetches would race on one rename).
      const full = cur.length >= maxObjects || bytes + p.req.bytes > maxBytes || ids.has(p.req.objectId);
      if (cur.length > 0 && full) {
        batches.push(cur);
        cur = [];
        bytes = 0;
        ids = new Set();
      }
      cur.push(p);
      bytes += p.req.bytes;
      ids.add(p.req.objectId);
    }
    if (cur.length > 0) batches.push(cur);
  }
  const send = async (batch: Pending[]) => {
    if (t.throttle) await t.throttle.take(batch.reduce((n, p) => n + p.req.bytes, 0));
    let answers: PullResult[];
    try {
      // The node reads the request's bytes no faster than the throttle's rate either, so a copy
      // bigger than a second's worth (paid above before the request) does not burst on the wire.
      answers = await t.storage.pull(batch[0]!.destUrl, batch.map(toPullCopy), {
        concurrency: perRequest,
        ...(t.throttle ? { bytesPerSecond: t.throttle.bytesPerSecond } : {}),
      });
    } catch (err) {
      // The destination refused the connection, failed, or answered nothing usable: it holds no
      // copy of this request we may count on, and no other source would help.
      for (const p of batch)
        results[p.index] = { ok: false, reason: 'DestinationUnreachable', detail: describe(err) };
      return;
    }
    for (const [i, a] of answers.entries()) results[batch[i]!.index] = outcomeOf(batch[i]!, a);
  };
  // Alone, this call's own lanes; in a runner, the lanes its claim loops share.
  const slots = t.pullSlots ?? new Slots(lanes);
  await Promise.all(batches.map((batch) => slots.run(() => send(batch))));
  return results;
}

function toPullCopy(p: Pending): PullCopy {
  return {
    owner: p.req.copyOwner,
    objectId: p.req.objectId,
    md5: p.req.md5,
    bytes: p.req.bytes,
    sources: p.sent.map((s) => ({ id: s.shark.manta_storage_id, url: s.url })),
  };
}

/** One copy's answer → the copy's result, with every source's failure in source order. */
function outcomeOf(p: Pending, a: PullResult): CopyResult {
  if (a.result === 'ok') return { ok: true, source: a.source };
  if (a.destination)
    return {
      ok: false,
      reason: a.destination.kind === 'full' ? 'DestinationInsufficientSpace' : 'DestinationUnreachable',
      detail: `${p.req.dest.manta_storage_id}: ${a.destination.message}`,
    };
  // The node tried the sources it was sent, in order, one attempt each.
  const tried = new Map<number, { kind: string; message: string }>();
  for (const [i, attempt] of a.attempts.entries()) {
    const s = p.sent[i];
    if (s) tried.set(s.at, attempt);
  }
  return noGoodSource(p.req, tried);
}

/** No source yielded the right bytes: every source's failure (unknown address, or what the node saw). */
function noGoodSource(req: CopyRequest, tried: Map<number, { kind: string; message: string }>): CopyResult {
  const failures = req.sources.map((s, at) => {
    const attempt = tried.get(at);
    return `${s.manta_storage_id}: ${attempt ? attempt.message : 'address unknown'}`;
  });
  const md5 = [...tried.values()].some((x) => x.kind === 'md5');
  const reason: SkipReason = md5 ? 'MD5Mismatch' : req.sources.length === 0 ? 'NoSource' : 'SourceOtherError';
  return { ok: false, reason, detail: failures.join('; ') || 'no source copy listed' };
}

function describe(err: unknown): string {
  return err instanceof RemoraError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
}

/** Whether the destination already holds a complete copy with the right MD5 (a resumed object). */
export async function destinationHasCopy(t: Transfer, req: CopyRequest): Promise<boolean> {
  const url = t.nodeUrl(req.dest.manta_storage_id);
  if (!url) return false;
  try {
    const h = await t.storage.head(url, req.copyOwner, req.objectId);
    // The node knows the MD5 only of copies it wrote since it started (md5-cache.ts): without it, copy again.
    return h !== undefined && h.contentLength === req.bytes && h.md5 === req.md5;
  } catch {
    return false;
  }
}
