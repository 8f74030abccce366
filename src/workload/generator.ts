/**
 * A reproducible workload: the same seed and spec give the same sequence of operations.
 * Both the front-door driver and the bulk loader consume this sequence, so bulk data is
 * the same kind as what users produce: several accounts, nested directories, a size mix
 * with zero-byte objects, snaplinks within and across directories (so across shards),
 * across namespaces (stor, public, reports) and across accounts (from another account's
 * /public, which anyone may read), overwrites and deletes.
 *
 * Memory is bounded: targets for links, overwrites and deletes come from a window of the
 * most recently written objects (RECENT_WINDOW), never from a list of everything.
 */
import { SeededRandom } from '../core/clock.js';

export type WorkloadOp =
  | { op: 'account'; login: string; uuid: string; reports: boolean }
  | { op: 'mkdir'; path: string }
  | { op: 'put'; path: string; size: number; copies: number }
  | { op: 'link'; path: string; source: string }
  | { op: 'delete'; path: string };

export interface WorkloadSpec {
  seed: number;
  accounts: number;
  objects: number;
  /** Share of object operations that are snaplinks, overwrites, deletes. */
  linkRate: number;
  overwriteRate: number;
  deleteRate: number;
  /** Largest object in bytes (the size mix is clipped to it). */
  maxObjectBytes: number;
  copies: number;
  /**
   * Skew (optional): this share of object operations goes to the first `count` accounts, the
   * rest to all accounts uniformly. Unset, accounts are uniform and no extra draw is made, so
   * existing seeds give the same sequence.
   */
  largeAccounts?: { count: number; share: number };
}

export const DEFAULT_SPEC: WorkloadSpec = {
  seed: 1,
  accounts: 4,
  objects: 200,
  linkRate: 0.08,
  overwriteRate: 0.05,
  deleteRate: 0.04,
  maxObjectBytes: 4 * 1024 * 1024,
  copies: 2,
};

/** Recent objects eligible as link sources, overwrite and delete targets. */
export const RECENT_WINDOW = 20_000;

/** Size mix: [share, min, max] bytes. Zero-byte objects are real and have no copies. */
const SIZE_MIX: [number, number, number][] = [
  [0.05, 0, 0],
  [0.4, 1, 4096],
  [0.35, 4097, 131_072],
  [0.15, 131_073, 1_048_576],
  [0.05, 1_048_577, 8_388_608],
];

export function drawSize(r: SeededRandom, max: number): number {
  let x = r.next();
  for (const [share, lo, hi] of SIZE_MIX) {
    if (x < share) return Math.min(max, lo + Math.floor(r.next() * (hi - lo + 1)));
    x -= share;
  }
  return Math.min(max, 1024);
}

interface Recent {
  path: string;
  live: boolean;
}

export function* generateWorkload(spec: WorkloadSpec): Generator<WorkloadOp> {
  const r = new SeededRandom(spec.seed);
  const logins: string[] = [];
  const dirs = new Map<string, string[]>(); // login → directories (bounded: a few per account)
  for (let a = 0; a < spec.accounts; a++) {
    const login = `user${a}`;
    logins.push(login);
    yield { op: 'account', login, uuid: r.uuid(), reports: a % 3 !== 2 };
    const list = [`/${login}/stor`, `/${login}/public`];
    dirs.set(login, list);
    const top = 3 + r.int(4);
    for (let d = 0; d < top; d++) {
      let parent = r.pick(list.slice(0, 2));
      const depth = 1 + r.int(3);
      for (let k = 0; k < depth; k++) {
        const p = `${parent}/d${d}_${k}`;
        yield { op: 'mkdir', path: p };
        list.push(p);
        parent = p;
      }
    }
    yield { op: 'mkdir', path: `/${login}/reports/shared` };
    list.push(`/${login}/reports/shared`);
  }
  // A ring buffer: the last RECENT_WINDOW objects written (Array.shift would be O(window)).
  const recent: Recent[] = [];
  let next = 0;
  let serial = 0;
  const remember = (path: string) => {
    if (recent.length < RECENT_WINDOW) recent.push({ path, live: true });
    else recent[next] = { path, live: true };
    next = (next + 1) % RECENT_WINDOW;
  };
  const liveRecent = (): Recent | undefined => {
    for (let tries = 0; tries < 8 && recent.length > 0; tries++) {
      const c = recent[r.int(recent.length)]!;
      if (c.live) return c;
    }
    return undefined;
  };
  for (let i = 0; i < spec.objects; i++) {
    const x = r.next();
    const big = spec.largeAccounts;
    const login =
      big && big.count > 0 && r.next() < big.share
        ? logins[r.int(Math.min(big.count, logins.length))]!
        : r.pick(logins);
    const target = liveRecent();
    if (target && x < spec.linkRate) {
      // Links: same directory, another directory (maybe another shard), another namespace,
      // or from another account's /public object.
      const srcLogin = target.path.split('/')[1]!;
      const sameAccount = srcLogin === login || !target.path.startsWith(`/${srcLogin}/public/`);
      const owner = sameAccount ? srcLogin : login;
      const dir = r.pick(dirs.get(owner)!);
      const path = `${dir}/link${serial++}`;
      yield { op: 'link', path, source: target.path };
      remember(path);
    } else if (target && x < spec.linkRate + spec.overwriteRate) {
      yield { op: 'put', path: target.path, size: drawSize(r, spec.maxObjectBytes), copies: spec.copies };
    } else if (target && x < spec.linkRate + spec.overwriteRate + spec.deleteRate) {
      target.live = false;
      yield { op: 'delete', path: target.path };
    } else {
      const path = `${r.pick(dirs.get(login)!)}/obj${serial++}`;
      yield { op: 'put', path, size: drawSize(r, spec.maxObjectBytes), copies: spec.copies };
      remember(path);
    }
  }
}

/** Deterministic content of a put: a function of the path and size only. */
export function contentFor(path: string, size: number): Buffer {
  const b = Buffer.alloc(size);
  let h = 2166136261;
  for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 16777619);
  for (let i = 0; i < size; i++) {
    h = Math.imul(h ^ i, 16777619);
    b[i] = h & 0xff;
  }
  return b;
}
