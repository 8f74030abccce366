/**
 * The object store that holds pipeline inputs and outputs (dumps, manifests, chunks),
 * addressed by Manta paths such as `/poseidon/stor/manatee_backups/...` — the original kept
 * them under the operator account (MANTA-REFERENCE §2.1, §3.0).
 *
 * The interface is deliberately small so that a front-door backend can implement it over
 * HTTP PUT / GET / HEAD / a directory listing. Every write is atomic (temp file + rename here,
 * a single PUT there), and every object's size and sha256 are recorded at write time.
 *
 * Local backend layout: `<root>/<path>` for data, `<root>/.meta/<path>.json` for the recorded
 * size, checksum, user metadata and write time. `root` is normally `<stateDir>/objects`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RemoraError } from '../core/errors.js';

/** User metadata kept with an object, like Manta's `m-*` headers (e.g. `m-mako-dump-time`). */
export type ObjectMeta = Record<string, string>;

export interface PutResult {
  path: string;
  bytes: number;
  sha256: string;
}

export interface ObjectHead {
  bytes: number;
  sha256: string;
  meta: ObjectMeta;
  mtime: Date;
}

export interface ObjectStore {
  /** Write an object atomically; readers see the old object or the new one, never a part. */
  put(objectPath: string, body: Readable | Buffer | string, meta?: ObjectMeta): Promise<PutResult>;
  /** A stream of the object's bytes; ObjectNotFound when absent. */
  get(objectPath: string): Promise<Readable>;
  head(objectPath: string): Promise<ObjectHead | undefined>;
  /** Every object whose path starts with `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Remove an object; absent objects are not an error. */
  delete(objectPath: string): Promise<void>;
  /** A local file holding the object (the local backend: the file itself), so DuckDB can read it. */
  localPath?(objectPath: string): string;
}

const META_DIR = '.meta';
/** In-memory bodies up to this size take LocalObjectStore's synchronous path (putSmall). */
const SMALL_PUT_BYTES = 8 << 20;
const TEMP_PREFIX = '.tmp-';

/** Validate a Manta-style object path: absolute, no `.`/`..`/empty segments. */
export function checkObjectPath(objectPath: string): string[] {
  const parts = objectPath.split('/');
  if (parts[0] !== '' || parts.length < 2) throw badPath(objectPath);
  const segs = parts.slice(1);
  for (const s of segs) {
    if (
      s === '' ||
      s === '.' ||
      s === '..' ||
      s.startsWith(TEMP_PREFIX) ||
      s === META_DIR ||
      s.includes('\0')
    )
      throw badPath(objectPath);
  }
  return segs;
}

function badPath(p: string): RemoraError {
  return new RemoraError('InvalidPath', `invalid object path ${JSON.stringify(p)}`);
}

/** A pass-through that counts the bytes and hashes them (sha256) on the way: every backend records both. */
export function hashingCounter(): { transform: Transform; result: () => { bytes: number; sha256: string } } {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  return { transform, result: () => ({ bytes, sha256: hash.digest('hex') }) };
}

export class LocalObjectStore implements ObjectStore {
  constructor(readonly root: string) {}

  localPath(objectPath: string): string {
    return path.join(this.root, ...checkObjectPath(objectPath));
  }

  private metaPath(objectPath: string): string {
    return path.join(this.root, META_DIR, ...checkObjectPath(objectPath)) + '.json';
  }

  async put(objectPath: string, body: Readable | Buffer | string, meta: ObjectMeta = {}): Promise<PutResult> {
    if ((typeof body === 'string' || Buffer.isBuffer(body)) && body.length <= SMALL_PUT_BYTES)
      return this.putSmall(objectPath, Buffer.from(body), meta);
    const tmp = this.tempFor(objectPath);
    const counter = hashingCounter();
    const source =
      Buffer.isBuffer(body) || typeof body === 'string' ? Readable.from([Buffer.from(body)]) : body;
    try {
      const out = fs.createWriteStream(tmp, { flags: 'wx' });
      await pipeline(source, counter.transform, out);
      const fh = await fs.promises.open(tmp, 'r');
      await fh.sync().finally(() => fh.close());
      return this.commit(objectPath, tmp, counter.result(), meta);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw err;
    }
  }

  /** A temp file name next to where `objectPath` will be (its directories created). */
  private tempFor(objectPath: string): string {
    const dir = path.dirname(this.localPath(objectPath));
    fs.mkdirSync(dir, { recursive: true });
    return path.join(dir, `${TEMP_PREFIX}${crypto.randomUUID()}`);
  }

  /**
   * Give a finished, fsynced data file its name, with its record: the meta file first (temp +
   * rename), then the data (rename). The data rename is the commit point; head() cross-checks the
   * size, so a crash between the two renames is noticed. Synchronous on purpose: a small file and
   * two renames block for well under 1 ms, a thread-pool hop can take far longer (putSmall).
   */
  private commit(
    objectPath: string,
    dataFile: string,
    { bytes, sha256 }: { bytes: number; sha256: string },
    meta: ObjectMeta,
  ): PutResult {
    const file = this.localPath(objectPath);
    const metaFile = this.metaPath(objectPath);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.mkdirSync(path.dirname(metaFile), { recursive: true });
    const metaTmp = `${metaFile}${TEMP_PREFIX}${crypto.randomUUID()}`;
    fs.writeFileSync(metaTmp, JSON.stringify({ bytes, sha256, meta, mtime: new Date().toISOString() }));
    fs.renameSync(metaTmp, metaFile);
    fs.renameSync(dataFile, file);
    return { path: objectPath, bytes, sha256 };
  }

  /**
   * An in-memory body: the same steps (data to a temp file, fsync, meta, two renames), but the
   * page-cache writes and renames are synchronous and only the fsync goes to the thread pool.
   * Each thread-pool hop waits for the main thread to be scheduled again; with both cores busy
   * (two DuckDB scans) the ~12 hops of the streamed path took a 0.5 MB put from ~6 ms to 50–90 ms
   * (docs/pipeline.md "Bench"). Writing a few MB into the page cache blocks for well under 1 ms.
   */
  private async putSmall(objectPath: string, data: Buffer, meta: ObjectMeta): Promise<PutResult> {
    const tmp = this.tempFor(objectPath);
    const fd = fs.openSync(tmp, 'wx');
    try {
      try {
        for (let off = 0; off < data.length;) off += fs.writeSync(fd, data, off);
        await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
      } finally {
        fs.closeSync(fd);
      }
      const sha256 = crypto.createHash('sha256').update(data).digest('hex');
      return this.commit(objectPath, tmp, { bytes: data.length, sha256 }, meta);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
  }

  /** Rename a local file (on the store's filesystem) into place; see adoptFile. */
  async adopt(objectPath: string, file: string, meta: ObjectMeta = {}): Promise<PutResult> {
    checkObjectPath(objectPath); // before hashing the file
    const sha256 = await sha256File(file);
    const bytes = (await fs.promises.stat(file)).size;
    // On disk before it has a name, as put() does: a manifest naming this object is written
    // (and fsynced) afterwards, and must never point at data a crash lost.
    const fh = await fs.promises.open(file, 'r');
    await fh.sync().finally(() => fh.close());
    return this.commit(objectPath, file, { bytes, sha256 }, meta);
  }

  /** A scratch directory on the store's filesystem (so adopt() is a rename); remove it when done. */
  async workDir(): Promise<string> {
    await fs.promises.mkdir(this.root, { recursive: true });
    return fs.promises.mkdtemp(path.join(this.root, `${TEMP_PREFIX}work-`));
  }

  async get(objectPath: string): Promise<Readable> {
    const file = this.localPath(objectPath);
    try {
      const fh = await fs.promises.open(file, 'r');
      return fh.createReadStream();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw new RemoraError('ObjectNotFound', `object ${objectPath} does not exist`, { cause: err });
      throw err;
    }
  }

  async head(objectPath: string): Promise<ObjectHead | undefined> {
    let stat: fs.Stats;
    try {
      stat = await fs.promises.stat(this.localPath(objectPath));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (!stat.isFile()) return undefined;
    let record: { bytes: number; sha256: string; meta: ObjectMeta } | undefined;
    try {
      record = JSON.parse(await fs.promises.readFile(this.metaPath(objectPath), 'utf8')) as typeof record;
    } catch {
      record = undefined;
    }
    if (!record || record.bytes !== stat.size) {
      // Written behind the store's back (or a crash between the two renames): checksum it now.
      const sha256 = await sha256File(this.localPath(objectPath));
      return { bytes: stat.size, sha256, meta: record?.meta ?? {}, mtime: stat.mtime };
    }
    return { bytes: record.bytes, sha256: record.sha256, meta: record.meta, mtime: stat.mtime };
  }

  async list(prefix: string): Promise<string[]> {
    const dirPrefix = prefix.endsWith('/') ? prefix.slice(0, -1) : path.posix.dirname(prefix);
    const start = dirPrefix === '' || dirPrefix === '/' ? this.root : this.localPath(dirPrefix);
    const out: string[] = [];
    await walk(start, dirPrefix === '/' ? '' : dirPrefix, out);
    return out.filter((p) => p.startsWith(prefix)).sort();
  }

  async delete(objectPath: string): Promise<void> {
    await fs.promises.rm(this.localPath(objectPath), { force: true });
    await fs.promises.rm(this.metaPath(objectPath), { force: true });
  }
}

async function walk(dir: string, objectDir: string, out: string[]): Promise<void> {
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR')
      return;
    throw err;
  }
  for (const e of entries) {
    if (e.name === META_DIR || e.name.startsWith(TEMP_PREFIX)) continue;
    const child = `${objectDir}/${e.name}`;
    if (e.isDirectory()) await walk(path.join(dir, e.name), child, out);
    else if (e.isFile()) out.push(child);
  }
}

/** A whole (small) object as UTF-8 text: manifests, partial files, reports. */
export async function readObjectText(store: ObjectStore, objectPath: string): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of await store.get(objectPath)) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The store a deployment uses by default: `<stateDir>/objects`. */
export function defaultObjectStore(stateDir: string): LocalObjectStore {
  return new LocalObjectStore(path.join(stateDir, 'objects'));
}

/**
 * Move a finished local file into the store: a rename for the local backend (same
 * filesystem, no copy), a streamed put for any other. The source file is gone afterwards.
 */
export async function adoptFile(
  store: ObjectStore,
  objectPath: string,
  file: string,
  meta: ObjectMeta = {},
): Promise<PutResult> {
  if (store instanceof LocalObjectStore) return store.adopt(objectPath, file, meta);
  const r = await store.put(objectPath, fs.createReadStream(file), meta);
  await fs.promises.rm(file, { force: true });
  return r;
}
