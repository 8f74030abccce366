/**
 * The front door's operations, independent of HTTP: resolve a path to an owner and key,
 * check the caller may touch it, and run the write order every housekeeping invariant
 * rests on: copies on storage nodes first, then the metadata row (MANTA-REFERENCE §3.1
 * "the write order is mako file → manta row").
 */
import crypto from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { RemoraError, isRemoraError } from '../core/errors.js';
import { type Clock, systemClock, systemRandom } from '../core/clock.js';
import { ALL_NAMESPACES, isUuid, mantaDirname } from '../core/ids.js';
import type { AccountValue, MantaObjectValue, MantaValue, Shark } from '../metadata/types.js';
import { accountByLogin, accountByUuid } from './accounts.js';
import { copyOwner, directoryValue, EMPTY_MD5, linkValue, objectValue } from './records.js';
import { CopyWriter } from './copy-writer.js';
import type { FrontDoorDeps } from './deps.js';

export type { FrontDoorDeps, StorageAccess } from './deps.js';

export interface Caller {
  account: AccountValue;
}

export interface Resolved {
  owner: AccountValue;
  key: string;
  namespace: string;
  /**
   * The path as the client spelled it (decoded): what error messages name. The key starts with
   * the owner's UUID, which a caller who named the account by login must not learn from an error.
   */
  shown: string;
}

const BASE64_MD5_RE = /^[A-Za-z0-9+/]{22}==$/;
/** Longest accepted request path, in UTF-8 bytes: well under what PostgreSQL can index in `_key`. */
export const MAX_PATH_BYTES = 1024;
/** C0 controls, DEL and C1 controls: never part of a name (NUL cannot even be stored in PostgreSQL text). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

export interface PutResult {
  objectId: string;
  md5: string;
  sharks: Shark[];
  etag: string;
  bytes: number;
  prevObjectId?: string;
  sharksContacted: { shark: string; result: string }[];
}

export class ObjectService {
  private readonly clock: Clock;
  private readonly copies: CopyWriter;

  constructor(private readonly deps: FrontDoorDeps) {
    this.clock = deps.clock ?? systemClock;
    this.copies = new CopyWriter(deps, this.clock, deps.random ?? systemRandom);
  }

  /** `/<login-or-uuid>/<namespace>/...` → owner account and moray key (`/<uuid>/...`). */
  async resolve(urlPath: string): Promise<Resolved> {
    const decoded = decodePath(urlPath);
    const parts = decoded.split('/');
    if (
      parts[0] !== '' ||
      parts.length < 3 ||
      parts.some((p, i) => i > 0 && (p === '' || p === '.' || p === '..'))
    ) {
      // BadRequest, not InvalidPath: the front-door object store reads it as "no such directory".
      throw new RemoraError(
        'BadRequest',
        `path ${decoded} must look like /<account>/<namespace>[/...] without empty, . or .. parts`,
      );
    }
    const who = parts[1]!;
    const owner = isUuid(who)
      ? await accountByUuid(this.deps.tier, who)
      : await accountByLogin(this.deps.tier, who);
    if (!owner) throw new RemoraError('ObjectNotFound', `account ${who} does not exist`);
    const namespace = parts[2]!;
    if (!(ALL_NAMESPACES as readonly string[]).includes(namespace)) {
      throw new RemoraError(
        'BadRequest',
        `namespace "${namespace}" is not one of ${ALL_NAMESPACES.join(', ')}`,
      );
    }
    return { owner, namespace, key: ['', owner.uuid, ...parts.slice(2)].join('/'), shown: decoded };
  }

  /** An account reaches only its own namespace; the operator reaches all; anyone may read /public. */
  authorize(caller: Caller | undefined, r: Resolved, write: boolean): void {
    if (!write && r.namespace === 'public') return;
    if (!caller)
      throw new RemoraError('Unauthorized', 'this request needs an `Authorization: Token <token>` header');
    if (caller.account.operator || caller.account.uuid === r.owner.uuid) return;
    throw new RemoraError(
      'Forbidden',
      `${caller.account.login} may not ${write ? 'write' : 'read'} ${r.owner.login}'s namespace`,
    );
  }

  private async requireParentDirectory(r: Resolved): Promise<void> {
    const row = await this.deps.tier.getObject<MantaValue>('manta', mantaDirname(r.key));
    const shown = mantaDirname(r.shown);
    if (!row) throw new RemoraError('DirectoryNotFound', `parent directory ${shown} does not exist`);
    if (row.value.type !== 'directory')
      throw new RemoraError('BadRequest', `parent ${shown} is an object, not a directory`);
  }

  async putObject(
    r: Resolved,
    body: Readable,
    opts: {
      contentLength?: number;
      contentMD5?: string;
      contentType?: string;
      copies?: number;
      headers?: Record<string, string>;
      creator?: string;
    },
  ): Promise<PutResult> {
    if (r.key.split('/').length < 4)
      throw new RemoraError('BadRequest', `cannot write an object at the root ${r.shown}`);
    await this.requireParentDirectory(r);
    const existing = await this.deps.tier.getObject<MantaValue>('manta', r.key);
    if (existing?.value.type === 'directory')
      throw new RemoraError('BadRequest', `${r.shown} is a directory`);
    if (opts.contentMD5 !== undefined && !BASE64_MD5_RE.test(opts.contentMD5))
      throw new RemoraError('BadRequest', 'Content-MD5 must be the base64 of a 16-byte MD5 digest');
    const copies = opts.copies ?? this.deps.defaultCopies;
    if (!Number.isInteger(copies) || copies < 1 || copies > 9)
      throw new RemoraError('BadRequest', 'durability-level must be 1..9');
    const objectId = crypto.randomUUID();
    const creator = opts.creator ?? r.owner.uuid;
    let sharks: Shark[] = [];
    let md5 = EMPTY_MD5;
    let bytes = 0;
    const contacted: { shark: string; result: string }[] = [];
    if (opts.contentLength === 0) {
      for await (const chunk of body) bytes += (chunk as Buffer).length;
      if (bytes !== 0) throw new RemoraError('BadRequest', 'Content-Length 0 but the body was not empty');
      if (opts.contentMD5 && opts.contentMD5 !== EMPTY_MD5)
        throw new RemoraError('Md5Mismatch', `Content-MD5 ${opts.contentMD5} does not match the empty body`);
    } else {
      ({ sharks, md5, bytes } = await this.copies.write(body, creator, objectId, copies, opts, contacted));
    }
    const value = objectValue({
      key: r.key,
      owner: r.owner.uuid,
      creator,
      objectId,
      contentLength: bytes,
      contentMD5: md5,
      contentType: opts.contentType ?? 'application/octet-stream',
      sharks,
      headers: opts.headers ?? {},
      mtime: this.clock.now(),
    });
    const etag = await this.deps.tier.putObject('manta', r.key, value as unknown as Record<string, unknown>);
    const prev = existing?.value;
    return {
      objectId,
      md5,
      sharks,
      etag,
      bytes,
      sharksContacted: contacted,
      ...(prev?.objectId ? { prevObjectId: prev.objectId } : {}),
    };
  }

  async mkdir(r: Resolved, creator?: string): Promise<void> {
    if (r.key.split('/').length < 4) return; // account roots always exist
    await this.requireParentDirectory(r);
    const existing = await this.deps.tier.getObject<MantaValue>('manta', r.key);
    if (existing?.value.type === 'directory') return; // mkdir is idempotent (mmkdir)
    if (existing) throw new RemoraError('BadRequest', `${r.shown} exists and is an object`);
    const v = directoryValue(r.key, r.owner.uuid, this.clock.now(), creator);
    try {
      await this.deps.tier.putObject('manta', r.key, v as unknown as Record<string, unknown>, { etag: null });
    } catch (err) {
      // Another mkdir of the same directory won the race between our read and our write: it
      // exists now, which is all mkdir promises. Anything else there is still a conflict.
      if (!isRemoraError(err, 'EtagConflict')) throw err;
      const now = await this.deps.tier.getObject<MantaValue>('manta', r.key);
      if (now?.value.type !== 'directory') throw err;
    }
  }

  /** A snaplink at `r` to the object at `source` (possibly another shard, another namespace). */
  async link(r: Resolved, source: Resolved): Promise<{ objectId: string; prevObjectId?: string }> {
    await this.requireParentDirectory(r);
    const src = await this.deps.tier.getObject<MantaValue>('manta', source.key);
    if (!src) throw new RemoraError('ObjectNotFound', `link source ${source.shown} does not exist`);
    if (src.value.type !== 'object')
      throw new RemoraError('BadRequest', `link source ${source.shown} is a directory`);
    const existing = await this.deps.tier.getObject<MantaValue>('manta', r.key);
    if (existing?.value.type === 'directory')
      throw new RemoraError('BadRequest', `${r.shown} is a directory`);
    const v = linkValue(src.value, r.key, r.owner.uuid, this.clock.now());
    await this.deps.tier.putObject('manta', r.key, v as unknown as Record<string, unknown>);
    const prev = existing?.value;
    return { objectId: v.objectId, ...(prev?.objectId ? { prevObjectId: prev.objectId } : {}) };
  }

  async head(r: Resolved): Promise<MantaValue> {
    const row = await this.deps.tier.getObject<MantaValue>('manta', r.key);
    if (!row) throw new RemoraError('ObjectNotFound', `${r.shown} does not exist`);
    return row.value;
  }

  /**
   * Open the object's bytes from the first copy that answers; the next copy when a node is down.
   * `shown` names the object in the error (the path as the client spelled it); which node failed
   * and why is kept in `details.failures`, for the server's log only.
   */
  async open(
    value: MantaObjectValue,
    range: { start: number; end: number } | undefined,
    shown: string,
  ): Promise<{ stream: Readable; contentLength: number; status: number; shark?: string }> {
    if (value.contentLength === 0) return { stream: PassThroughEnded(), contentLength: 0, status: 200 };
    const failures: string[] = [];
    for (const s of value.sharks) {
      const url = this.deps.nodeUrl(s.manta_storage_id);
      if (!url) {
        failures.push(`${s.manta_storage_id}: unknown node`);
        continue;
      }
      try {
        const got = await this.deps.storage.get(
          url,
          copyOwner(value),
          value.objectId,
          range ? { range } : {},
        );
        return { ...got, shark: s.manta_storage_id };
      } catch (err) {
        if (!isRemoraError(err, 'StorageNodeUnreachable') && !isRemoraError(err, 'ObjectNotFound')) throw err;
        failures.push(`${s.manta_storage_id}: ${(err as Error).message}`);
      }
    }
    throw new RemoraError('AllCopiesUnavailable', `no copy of ${shown} could be read; retry later`, {
      details: { failures },
    });
  }

  async list(r: Resolved, limit = 10_000): Promise<MantaValue[]> {
    const v = await this.head(r);
    if (v.type !== 'directory') throw new RemoraError('BadRequest', `${r.shown} is not a directory`);
    return (await this.deps.tier.listDirectory(r.key, limit)).map((x) => x.value);
  }

  async delete(r: Resolved): Promise<{ prevObjectId?: string }> {
    const row = await this.deps.tier.getObject<MantaValue>('manta', r.key);
    if (!row) throw new RemoraError('ObjectNotFound', `${r.shown} does not exist`);
    if (row.value.type === 'directory') {
      if (r.key.split('/').length < 4)
        throw new RemoraError('BadRequest', `cannot delete the account root ${r.shown}`);
      if ((await this.deps.tier.listDirectory(r.key, 1)).length > 0)
        throw new RemoraError('DirectoryNotEmpty', `${r.shown} is not empty`);
    }
    await this.deps.tier.deleteObject('manta', r.key, { etag: row.etag });
    return row.value.type === 'object' ? { prevObjectId: row.value.objectId } : {};
  }
}

/**
 * Percent-decode a request path and refuse what cannot be a name: bad encoding, a control
 * character (a NUL used to reach PostgreSQL and come back as a 500 with its message), or a path
 * longer than MAX_PATH_BYTES. The message never echoes the offending characters.
 */
function decodePath(urlPath: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch (err) {
    throw new RemoraError('InvalidPath', 'the path is not valid percent-encoded UTF-8', { cause: err });
  }
  const control = CONTROL_RE.exec(decoded);
  if (control) {
    const cp = control[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    throw new RemoraError(
      'InvalidPath',
      `the path contains the control character U+${cp} at position ${control.index}: names may not hold control characters`,
    );
  }
  if (Buffer.byteLength(decoded) > MAX_PATH_BYTES)
    throw new RemoraError('InvalidPath', `the path is longer than ${MAX_PATH_BYTES} bytes`);
  return decoded;
}

function PassThroughEnded(): Readable {
  const p = new PassThrough();
  p.end();
  return p;
}
