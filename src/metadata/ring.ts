/**
 * The ring: electric-moray's key → shard mapping (MANTA-REFERENCE §1.7).
 *   tkey  = dirname(key), except `/<uuid>/stor` (and the other roots), which hash themselves
 *   vnode = floor(sha256(tkey) / (2^256-1 / vnodes))            [fash lib/common.js]
 *   shard = ring.pnodes[vnode]                                   [fash LevelDB ring]
 * The ring is created once (vnode i → index shard i mod n, as fash's initial spread) and
 * stored; a later start with a different shard list or vnode count is refused (RingChanged),
 * because moving vnodes silently would orphan every key on them.
 */
import crypto from 'node:crypto';
import { mantaDirname } from '../core/ids.js';

const MAX = (1n << 256n) - 1n;

export interface RingDefinition {
  vnodes: number;
  /** Index shard names, in configuration order. */
  shards: string[];
  /** vnode → index into `shards`. */
  assignment: number[];
}

export function createRing(vnodes: number, shards: string[]): RingDefinition {
  const assignment = new Array<number>(vnodes);
  for (let v = 0; v < vnodes; v++) assignment[v] = v % shards.length;
  return { vnodes, shards: [...shards], assignment };
}

export class Ring {
  private readonly interval: bigint;
  constructor(readonly def: RingDefinition) {
    this.interval = MAX / BigInt(def.vnodes);
  }

  /** The vnode of a hashed key (the key transform already applied). */
  vnodeOfTransformed(tkey: string): number {
    const hex = crypto.createHash('sha256').update(tkey).digest('hex');
    const v = Number(BigInt(`0x${hex}`) / this.interval);
    return Math.min(v, this.def.vnodes - 1);
  }

  /** vnode of a `manta` key: hashes its dirname. */
  vnodeOfKey(key: string): number {
    return this.vnodeOfTransformed(mantaDirname(key));
  }

  shardOfVnode(vnode: number): string {
    const idx = this.def.assignment[vnode];
    if (idx === undefined) throw new Error(`vnode ${vnode} outside the ring (${this.def.vnodes} vnodes)`);
    return this.def.shards[idx]!;
  }

  /** Where a `manta` key lives: its vnode and shard. */
  locate(key: string): { vnode: number; shard: string } {
    const vnode = this.vnodeOfKey(key);
    return { vnode, shard: this.shardOfVnode(vnode) };
  }
}

/** Compare a stored ring with the configured one; a description of the difference, or undefined. */
export function ringDifference(
  stored: RingDefinition,
  configured: { vnodes: number; shards: string[] },
): string | undefined {
  if (stored.vnodes !== configured.vnodes)
    return `vnodes ${stored.vnodes} stored, ${configured.vnodes} configured`;
  if (stored.shards.join(',') !== configured.shards.join(','))
    return `index shards [${stored.shards.join(', ')}] stored, [${configured.shards.join(', ')}] configured`;
  return undefined;
}
