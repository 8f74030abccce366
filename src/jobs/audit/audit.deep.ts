/**
 * Deep audit of one group's sample (audit.rules.ts "deep sample"): each sampled copy is hashed
 * on its own node (`GET /md5/<owner>/<objectId>`, storage-handlers.ts), paced per node by a
 * ByteThrottle shared by every task of the process (Ceph's osd_scrub sleep, Swift's auditor
 * bytes_per_second), and compared with the record's contentMD5 and contentLength. A mismatch is
 * a `corrupt` problem. A copy gone since the listing, a node that does not answer or whose
 * address is unknown, a record without contentMD5: counted and exampled, never a problem.
 */
import { eachLimit } from '../../core/concurrency.js';
import { isRemoraError } from '../../core/errors.js';
import type { ReportBuilder } from '../../core/run-report.js';
import type { StorageClient } from '../../storage/storage-client.js';
import type { ByteThrottle } from '../../storage/throttle.js';
import type { Problem } from './audit.rules.js';
import type { SampledCopy } from './audit.scan.js';

/** Copies hashed at once per task (each reads a whole file on its node). */
const HASHES_IN_PARALLEL = 4;

export interface DeepDeps {
  storage: Pick<StorageClient, 'md5'>;
  nodeUrl(id: string): string | undefined;
  throttle(node: string): ByteThrottle;
  report: ReportBuilder;
  signal?: AbortSignal;
}

export async function deepAudit(sample: readonly SampledCopy[], deps: DeepDeps): Promise<Problem[]> {
  const r = deps.report;
  const corrupt: Problem[] = [];
  r.count('deepSampled', sample.length);
  await eachLimit([...sample], HASHES_IN_PARALLEL, async (c) => {
    if (deps.signal?.aborted) return;
    if (c.md5 === null) {
      r.count('deepNoRecordedMd5').event('deep-no-recorded-md5', 'info', {
        objectId: c.objectId,
        key: c.key,
      });
      return;
    }
    const url = deps.nodeUrl(c.node);
    if (!url) {
      r.count('deepSkippedAddressUnknown').event('node-address-unknown', 'warning', { node: c.node });
      return;
    }
    await deps.throttle(c.node).take(c.bytes ?? 0);
    let got: { md5: string; bytes: number } | undefined;
    try {
      got = await deps.storage.md5(url, c.owner, c.objectId);
    } catch (err) {
      if (!isRemoraError(err, 'StorageNodeUnreachable')) throw err;
      r.count('deepSkippedNodeUnreachable').event('node-unreachable', 'warning', {
        node: c.node,
        objectId: c.objectId,
      });
      return;
    }
    if (!got) {
      // Listed, gone now (moved by GC or rebalance since the listing): tomorrow's audit judges it.
      r.count('deepCopyGone').event('deep-copy-gone', 'info', { node: c.node, objectId: c.objectId });
      return;
    }
    r.count('deepHashed').count(`deepHashed.${c.node}`).count('deepBytesHashed', got.bytes);
    if (got.md5 !== c.md5 || (c.bytes !== null && got.bytes !== c.bytes))
      corrupt.push({
        kind: 'corrupt',
        objectId: c.objectId,
        node: c.node,
        key: c.key,
        shard: c.shard,
        owner: c.owner,
        expectedMd5: c.md5,
        actualMd5: got.md5,
        bytes: got.bytes,
      });
  });
  return corrupt;
}
