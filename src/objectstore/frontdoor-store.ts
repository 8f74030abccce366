/**
 * The object store over the deployment's own front door, as the operator account: dumps and
 * pipeline outputs live under `/poseidon/stor/...` in Manta itself, as the original kept them,
 * so workers on several machines share them. A write is one PUT (the front door writes the
 * record only after every copy is in place, so readers see the old object or the new one).
 * Size and sha256 are computed before the PUT (a stream goes through a temp file first) and
 * kept with the object as `m-*` headers, as Manta keeps user metadata:
 *   m-remora-sha256   the body's sha256
 *   m-remora-meta     the caller's metadata, JSON, percent-encoded (lossless)
 *   m-*               every caller key that already starts with `m-`, as itself (for other tools)
 * No local files: jobs that read chunks with DuckDB need the local backend (`localPath`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isRemoraError } from '../core/errors.js';
import type { FrontDoorClient } from '../frontdoor/client.js';
import {
  checkObjectPath,
  type ObjectHead,
  hashingCounter,
  type ObjectMeta,
  type ObjectStore,
  type PutResult,
} from './object-store.js';

const SHA_HEADER = 'm-remora-sha256';
const META_HEADER = 'm-remora-meta';

export class FrontDoorObjectStore implements ObjectStore {
  private readonly madeDirs = new Set<string>();

  constructor(private readonly client: FrontDoorClient) {}

  async put(objectPath: string, body: Readable | Buffer | string, meta: ObjectMeta = {}): Promise<PutResult> {
    checkObjectPath(objectPath);
    await this.ensureParent(objectPath);
    if (!(body instanceof Readable)) {
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      const sha256 = crypto.createHash('sha256').update(buf).digest('hex');
      await this.client.put(objectPath, buf, { headers: metaHeaders(meta, sha256), ...contentType(meta) });
      return { path: objectPath, bytes: buf.length, sha256 };
    }
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'remora-fd-put-'));
    const tmp = path.join(dir, 'body');
    try {
      const counter = hashingCounter();
      await pipeline(body, counter.transform, fs.createWriteStream(tmp));
      const { bytes, sha256 } = counter.result();
      await this.client.put(objectPath, fs.createReadStream(tmp), {
        contentLength: bytes,
        headers: metaHeaders(meta, sha256),
        ...contentType(meta),
      });
      return { path: objectPath, bytes, sha256 };
    } finally {
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  }

  async get(objectPath: string): Promise<Readable> {
    return this.client.getStream(objectPath);
  }

  async head(objectPath: string): Promise<ObjectHead | undefined> {
    const h = await this.client.head(objectPath);
    if (!h || /type=directory/.test(String(h.headers['content-type']))) return undefined;
    const raw = h.headers[META_HEADER];
    return {
      bytes: Number(h.headers['content-length'] ?? 0),
      sha256: String(h.headers[SHA_HEADER] ?? ''),
      meta: typeof raw === 'string' ? (JSON.parse(decodeURIComponent(raw)) as ObjectMeta) : {},
      mtime: new Date(String(h.headers['last-modified'])),
    };
  }

  /** Every object under the directory part of `prefix`, recursively, whose path starts with it. */
  async list(prefix: string): Promise<string[]> {
    const dir = prefix.endsWith('/') ? prefix.slice(0, -1) : path.posix.dirname(prefix);
    const out: string[] = [];
    const walk = async (d: string): Promise<void> => {
      let entries: { name: string; type: string }[];
      try {
        entries = await this.client.list(d);
      } catch (err) {
        if (isRemoraError(err, 'ObjectNotFound') || isRemoraError(err, 'BadRequest')) return;
        throw err;
      }
      for (const e of entries) {
        const p = `${d}/${e.name}`;
        if (e.type === 'directory') await walk(p);
        else out.push(p);
      }
    };
    await walk(dir);
    return out.filter((p) => p.startsWith(prefix)).sort();
  }

  async delete(objectPath: string): Promise<void> {
    try {
      await this.client.delete(objectPath);
    } catch (err) {
      if (!isRemoraError(err, 'ObjectNotFound')) throw err;
    }
  }

  /** mmkdir -p of the object's directory (each directory once per store instance). */
  private async ensureParent(objectPath: string): Promise<void> {
    const dir = path.posix.dirname(objectPath);
    if (this.madeDirs.has(dir)) return;
    await this.client.mkdirp(dir);
    this.madeDirs.add(dir);
  }
}

function metaHeaders(meta: ObjectMeta, sha256: string): Record<string, string> {
  const h: Record<string, string> = {
    [SHA_HEADER]: sha256,
    [META_HEADER]: encodeURIComponent(JSON.stringify(meta)),
  };
  for (const [k, v] of Object.entries(meta)) if (k.startsWith('m-') && !k.startsWith('m-remora-')) h[k] = v;
  return h;
}

function contentType(meta: ObjectMeta): { contentType?: string } {
  return meta['content-type'] ? { contentType: meta['content-type'] } : {};
}
