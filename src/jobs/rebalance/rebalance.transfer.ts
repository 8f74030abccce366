/**
 * Moving the bytes: pull from a source node and stream straight into the destination's PUT with
 * `Content-MD5` set to the record's MD5. The destination writes a temp file, checks the MD5 and
 * only then fsyncs and renames it into place (docs/storage-nodes.md), so a truncated or corrupted
 * transfer is never committed (mola's Md5Mismatch, MANTA-5212) and a killed agent leaves no file
 * behind: the node discards the temp file when the connection drops, and wipes its temp directory
 * at start. No agent-side temp directory exists to orphan.
 *
 * Sources, in order: the old copy (mako_rebalance pulled from `oldShark`), then every other copy
 * the records list. An MD5 mismatch or an unreadable source moves on to the next one.
 */
import { ByteThrottle } from '../../storage/throttle.js';
import { pipeline, type Readable, Transform } from 'node:stream';
import { isRemoraError, RemoraError } from '../../core/errors.js';
import type { Shark } from '../../metadata/types.js';
import type { StorageClient } from '../../storage/storage-client.js';
import type { SkipReason } from './rebalance.types.js';

/** Resolves a manta_storage_id to its base URL (undefined: not a known, running node). */
export type NodeUrl = (id: string) => string | undefined;

/** Test hook at an edge we do not own (the network): may wrap the bytes read from a source. */
export type TransferFault = (info: {
  objectId: string;
  source: Shark;
  attempt: number;
}) => Transform | undefined;

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
  fault?: TransferFault;
}

/** Copy one object onto its destination from the first source that yields the right bytes. */
export async function copyObject(t: Transfer, req: CopyRequest): Promise<CopyResult> {
  const destUrl = t.nodeUrl(req.dest.manta_storage_id);
  if (!destUrl)
    return {
      ok: false,
      reason: 'DestinationUnreachable',
      detail: `${req.dest.manta_storage_id}: address unknown`,
    };
  const failures: string[] = [];
  let md5Failures = 0;
  for (const [attempt, source] of req.sources.entries()) {
    const srcUrl = t.nodeUrl(source.manta_storage_id);
    if (!srcUrl) {
      failures.push(`${source.manta_storage_id}: address unknown`);
      continue;
    }
    const r = await copyFrom(t, req, source, srcUrl, destUrl, attempt);
    if (r === 'ok') return { ok: true, source: source.manta_storage_id };
    if (r.dest) return { ok: false, reason: r.dest, detail: r.detail };
    if (r.md5) md5Failures++;
    failures.push(`${source.manta_storage_id}: ${r.detail}`);
  }
  const reason: SkipReason =
    md5Failures > 0 ? 'MD5Mismatch' : req.sources.length === 0 ? 'NoSource' : 'SourceOtherError';
  return { ok: false, reason, detail: failures.join('; ') || 'no source copy listed' };
}

type AttemptFailure = { detail: string; md5?: boolean; dest?: SkipReason };

async function copyFrom(
  t: Transfer,
  req: CopyRequest,
  source: Shark,
  srcUrl: string,
  destUrl: string,
  attempt: number,
): Promise<'ok' | AttemptFailure> {
  let got: Awaited<ReturnType<StorageClient['get']>>;
  try {
    got = await t.storage.get(srcUrl, req.copyOwner, req.objectId);
  } catch (err) {
    return { detail: describe(err) };
  }
  if (got.contentLength !== req.bytes) {
    got.stream.destroy();
    return { detail: `source copy has ${got.contentLength} bytes, the record says ${req.bytes}` };
  }
  let sourceFailed: Error | undefined;
  got.stream.once('error', (e) => (sourceFailed ??= e));
  got.stream.once('aborted', () => (sourceFailed ??= new Error('source connection cut')));
  const stages: (Readable | Transform)[] = [got.stream];
  if (t.throttle) stages.push(t.throttle.stream());
  const fault = t.fault?.({ objectId: req.objectId, source, attempt });
  if (fault) stages.push(fault);
  const body =
    stages.length === 1
      ? got.stream
      : (pipeline(stages as [Readable, ...Transform[]], () => {}) as unknown as Readable);
  try {
    await t.storage.put(destUrl, req.copyOwner, req.objectId, body, {
      contentLength: req.bytes,
      contentMD5: req.md5,
    });
    return 'ok';
  } catch (err) {
    got.stream.destroy();
    // A destination that refused the connection never saw a byte: its failure cuts the source
    // stream too, which must not be read as a bad source (every other source would be tried, and
    // the object skipped as SourceOtherError instead of DestinationUnreachable).
    if (destinationRefused(err)) return { dest: 'DestinationUnreachable', detail: describe(err) };
    if (isRemoraError(err, 'Md5Mismatch'))
      return { detail: `MD5 mismatch reading from ${source.manta_storage_id}`, md5: true };
    if (sourceFailed || isRemoraError(err, 'TruncatedTransfer'))
      return { detail: `source failed mid-transfer: ${describe(sourceFailed ?? err)}` };
    if (isRemoraError(err, 'StorageNodeFull'))
      return { dest: 'DestinationInsufficientSpace', detail: describe(err) };
    return { dest: 'DestinationUnreachable', detail: describe(err) };
  }
}

/** Errors of connecting to a node: nothing was sent. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

function destinationRefused(err: unknown): boolean {
  if (!isRemoraError(err, 'StorageNodeUnreachable')) return false;
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && CONNECT_ERRORS.has(code);
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
