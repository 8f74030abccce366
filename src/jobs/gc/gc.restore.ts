/**
 * `remora gc restore <objectId>`: put a tombstoned copy back on every node whose tombstone holds
 * it, within the retention, and say which live records reference the objectId now. The storage
 * node's part (find the day, MOVE back, never overwrite) is src/storage/tombstone-restore.ts.
 *
 * Where the copy goes: `/<creator || owner>/<objectId>` of the live records (the path every
 * copy of that object has, gc.rules.ts). No live record → refused (a copy nothing references is
 * only cruft), unless `--force`, which then needs `--owner` to know the directory. Records that
 * disagree on the directory (they should not: a snaplink keeps its source's creator) → refused
 * unless `--owner` says which.
 *
 * Afterwards every node each record names is asked (HEAD) whether the copy is in place, so the
 * operator sees at once whether the records are whole again.
 */
import { isRemoraError, RemoraError } from '../../core/errors.js';
import { isUuid } from '../../core/ids.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import type { MantaObjectValue } from '../../metadata/types.js';
import type { NodeDirectory } from '../../storage/node-directory.js';
import type { StorageClient } from '../../storage/storage-client.js';
import { restoreFromTombstone } from '../../storage/tombstone-restore.js';

export interface RestoreRequest {
  objectId: string;
  /** Restore from this tombstone day only (default: the newest day that holds it, per node). */
  day?: string;
  /** Restore even when no live record references the objectId. */
  force?: boolean;
  /** The directory (`creator || owner` uuid) to restore into, when the records cannot say. */
  owner?: string;
}

export type NodeOutcome = 'restored' | 'exists' | 'absent' | 'unreachable' | 'address unknown' | 'refused';

export interface RestoreResult {
  objectId: string;
  /** The directory the copies were restored into. */
  dir: string;
  nodes: { node: string; outcome: NodeOutcome; day?: string; detail?: string }[];
  /** The live records referencing the objectId, and whether each node they name has the copy now. */
  records: {
    key: string;
    shard: string;
    nodes: { node: string; copy: 'in place' | 'missing' | 'unknown' }[];
  }[];
}

export async function restoreObject(
  deps: {
    tier: Pick<MetadataTier, 'findByObjectIds'>;
    storage: Pick<StorageClient, 'tombstoneDays' | 'restore' | 'head'>;
    nodes: Pick<NodeDirectory, 'list' | 'url'>;
  },
  req: RestoreRequest,
): Promise<RestoreResult> {
  const { objectId } = req;
  const refs = ((await deps.tier.findByObjectIds([objectId])).get(objectId) ?? []).filter(
    (r): r is typeof r & { value: MantaObjectValue } => r.value.type === 'object',
  );
  if (refs.length === 0 && !req.force)
    throw new RemoraError(
      'UsageError',
      `no live record references ${objectId}: a restored copy would only be cruft. ` +
        'To restore it anyway: --force --owner <uuid> (the directory the copy belongs in)',
    );
  const dirs = [...new Set(refs.map((r) => r.value.creator || r.value.owner))];
  const dir = chooseDir(objectId, dirs, req);

  const nodes: RestoreResult['nodes'] = [];
  for (const e of deps.nodes.list()) {
    if (!e.url) {
      nodes.push({ node: e.id, outcome: 'address unknown' });
      continue;
    }
    try {
      const r = await restoreFromTombstone(
        deps.storage,
        e.url,
        dir,
        objectId,
        req.day ? { day: req.day } : {},
      );
      nodes.push({ node: e.id, outcome: r.outcome, ...(r.day ? { day: r.day } : {}) });
    } catch (err) {
      if (!isRemoraError(err)) throw err;
      nodes.push({
        node: e.id,
        outcome: err.code === 'StorageNodeUnreachable' ? 'unreachable' : 'refused',
        detail: `${err.code}: ${err.message}`,
      });
    }
  }

  const records: RestoreResult['records'] = [];
  for (const r of refs) {
    const named: RestoreResult['records'][number]['nodes'] = [];
    for (const s of r.value.sharks) {
      const url = deps.nodes.url(s.manta_storage_id);
      let copy: 'in place' | 'missing' | 'unknown' = 'unknown';
      if (url) {
        try {
          copy = (await deps.storage.head(url, r.value.creator || r.value.owner, objectId))
            ? 'in place'
            : 'missing';
        } catch (err) {
          if (!isRemoraError(err)) throw err;
        }
      }
      named.push({ node: s.manta_storage_id, copy });
    }
    records.push({ key: r.key, shard: r.shard, nodes: named });
  }
  return { objectId, dir, nodes, records };
}

function chooseDir(objectId: string, dirs: string[], req: RestoreRequest): string {
  if (req.owner !== undefined) {
    if (!isUuid(req.owner)) throw new RemoraError('UsageError', `--owner: not a uuid: ${req.owner}`);
    if (dirs.length > 0 && !dirs.includes(req.owner) && !req.force)
      throw new RemoraError(
        'UsageError',
        `--owner ${req.owner}: the live records of ${objectId} keep their copies under ${dirs.join(', ')} (add --force to restore elsewhere anyway)`,
      );
    return req.owner;
  }
  if (dirs.length === 1) return dirs[0]!;
  if (dirs.length === 0)
    throw new RemoraError(
      'UsageError',
      `no live record says where the copies of ${objectId} belong: --force needs --owner <uuid>`,
    );
  throw new RemoraError(
    'UsageError',
    `the live records of ${objectId} disagree on the copy's directory (${dirs.join(', ')}): say which with --owner`,
  );
}
