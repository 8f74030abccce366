/**
 * Writing an object's copies: pick storage nodes (muskie's picker), make sure every node of
 * the chosen tuple answers, then stream the one request body to all of them at once, each
 * node checking the MD5 before it renames the copy into place.
 *
 * Errors about a node carry `details.node` (or `details.nodes`): the front door shows the client
 * a fixed message for those and logs the detail (public-error.ts).
 */
import { PassThrough, type Readable } from 'node:stream';
import { RemoraError, isRemoraError } from '../core/errors.js';
import type { Clock, Random } from '../core/clock.js';
import type { Shark, StorageRecordValue } from '../metadata/types.js';
import { pickTuples } from './picker.js';
import type { FrontDoorDeps } from './deps.js';

const DEFAULT_STORAGE_REFRESH_MS = 1000;
/** How long a node that did not answer is left out of picks (shorter than muskie's 60 s heartbeat lag). */
const SUSPECT_MS = 10_000;
/** Rounds of picking (each: a primary and two fallback tuples) before a write gives up. */
const PICK_ROUNDS = 3;

export type Contacted = { shark: string; result: string }[];

export class CopyWriter {
  private storageCache: { at: number; records: StorageRecordValue[] } | undefined;
  private readonly suspectUntil = new Map<string, number>();

  constructor(
    private readonly deps: FrontDoorDeps,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {}

  private async storageRecords(): Promise<StorageRecordValue[]> {
    const now = this.clock.now();
    const ttl = this.deps.storageRefreshMs ?? DEFAULT_STORAGE_REFRESH_MS;
    if (!this.storageCache || now - this.storageCache.at > ttl) {
      const rows = await this.deps.tier.storageRecords();
      this.storageCache = { at: now, records: rows.map((r) => r.value) };
    }
    return this.storageCache.records;
  }

  private url(storageId: string): string {
    const u = this.deps.nodeUrl(storageId);
    if (!u)
      throw new RemoraError('StorageNodeUnreachable', `no address known for storage node ${storageId}`, {
        details: { node: storageId },
      });
    return u;
  }

  /**
   * Stream the body to every node of the first tuple whose nodes all answer (the fallback
   * tuples cover a node that is down before any byte is sent). A failure after bytes have
   * flowed fails the request: the copies already written stay behind as cruft, as in Manta.
   */
  async write(
    body: Readable,
    owner: string,
    objectId: string,
    copies: number,
    opts: { contentLength?: number; contentMD5?: string },
    contacted: { shark: string; result: string }[],
  ): Promise<{ sharks: Shark[]; md5: string; bytes: number }> {
    const size = opts.contentLength ?? (this.deps.maxStreamingSizeMB ?? 1024) * 1024 * 1024;
    const tuple = await this.chooseReachableTuple(owner, objectId, size, copies, contacted);
    const branches = tuple.map(() => new PassThrough());
    body.on('data', (chunk: Buffer) => {
      let wantMore = true;
      for (const b of branches) wantMore = b.write(chunk) && wantMore;
      if (!wantMore) {
        body.pause();
        const waiting = branches.filter((b) => b.writableNeedDrain);
        let left = waiting.length;
        for (const b of waiting) b.once('drain', () => --left === 0 && body.resume());
      }
    });
    body.on('end', () => branches.forEach((b) => b.end()));
    body.on('error', (e) => branches.forEach((b) => b.destroy(e)));
    const results = await Promise.allSettled(
      tuple.map((s, i) =>
        this.deps.storage.put(this.url(s.manta_storage_id), owner, objectId, branches[i]!, {
          ...(opts.contentLength !== undefined ? { contentLength: opts.contentLength } : {}),
          ...(opts.contentMD5 ? { contentMD5: opts.contentMD5 } : {}),
        }),
      ),
    );
    results.forEach((res, i) =>
      contacted.push({
        shark: tuple[i]!.manta_storage_id,
        result: res.status === 'fulfilled' ? 'ok' : 'error',
      }),
    );
    const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed) {
      branches.forEach((b) => b.destroy());
      throw failed.reason instanceof RemoraError
        ? failed.reason
        : new RemoraError('StorageNodeUnreachable', String(failed.reason), {
            cause: failed.reason,
            details: { nodes: tuple.map((s) => s.manta_storage_id) },
          });
    }
    const ok = results as PromiseFulfilledResult<{ md5: string; bytes: number }>[];
    const first = ok[0]!.value;
    if (ok.some((x) => x.value.md5 !== first.md5 || x.value.bytes !== first.bytes)) {
      throw new RemoraError(
        'Md5Mismatch',
        `copies of ${objectId} disagree: ${ok.map((x) => `${x.value.md5}/${x.value.bytes}`).join(', ')}`,
        { details: { nodes: tuple.map((s) => s.manta_storage_id) } },
      );
    }
    if (opts.contentLength !== undefined && first.bytes !== opts.contentLength) {
      throw new RemoraError('TruncatedTransfer', `received ${first.bytes} of ${opts.contentLength} bytes`);
    }
    return { sharks: tuple, md5: first.md5, bytes: first.bytes };
  }

  /**
   * Pick tuples (muskie's primary + two fallbacks) and return the first whose nodes all
   * answer. Unlike muskie, a node that did not answer is remembered for SUSPECT_MS and left
   * out of the next picks, for this request and the following ones: a dead node whose last
   * heartbeat is still fresh would otherwise be picked again and again until its record ages.
   */
  private async chooseReachableTuple(
    owner: string,
    objectId: string,
    size: number,
    copies: number,
    contacted: { shark: string; result: string }[],
  ): Promise<Shark[]> {
    for (let round = 0; round < PICK_ROUNDS; round++) {
      const now = this.clock.now();
      const records = (await this.storageRecords()).filter(
        (r) => (this.suspectUntil.get(r.manta_storage_id) ?? 0) <= now,
      );
      const tuples = pickTuples(records, { size, replicas: copies }, now, this.deps.policy, this.random);
      let newlySuspect = false;
      for (const tuple of tuples) {
        if (tuple.some((s) => (this.suspectUntil.get(s.manta_storage_id) ?? 0) > now)) continue;
        const reachable = await Promise.all(tuple.map((s) => this.probe(s, owner, objectId, contacted)));
        if (reachable.every(Boolean)) return tuple;
        newlySuspect = true;
      }
      if (!newlySuspect) break;
    }
    throw new RemoraError('NotEnoughStorageNodes', `no ${copies} reachable storage nodes with room answered`);
  }

  private async probe(
    s: Shark,
    owner: string,
    objectId: string,
    contacted: { shark: string; result: string }[],
  ): Promise<boolean> {
    try {
      await this.deps.storage.head(this.url(s.manta_storage_id), owner, objectId);
      return true;
    } catch (err) {
      if (!isRemoraError(err, 'StorageNodeUnreachable')) throw err;
      contacted.push({ shark: s.manta_storage_id, result: 'unreachable' });
      this.suspectUntil.set(s.manta_storage_id, this.clock.now() + SUSPECT_MS);
      return false;
    }
  }
}
