/**
 * Building `manta` values exactly as libmanta createMetadata() does (MANTA-REFERENCE §1.2):
 * the common fields, then the type-specific ones. Snaplinks are stored as `type:"object"`
 * rows that copy the source's content fields and add `createdFrom`.
 */
import { mantaBasename, mantaDirname } from '../core/ids.js';
import type { MantaDirectoryValue, MantaObjectValue, Shark } from '../metadata/types.js';

/** MD5 of the empty body, base64 (muskie lib/obj.js: zero-byte objects have no sharks). */
export const EMPTY_MD5 = '1B2M2Y8AsgTpgAmY7PhCfg==';

export interface ObjectFields {
  key: string;
  owner: string;
  creator?: string;
  objectId: string;
  contentLength: number;
  contentMD5: string;
  contentType: string;
  sharks: Shark[];
  headers?: Record<string, string>;
  mtime: number;
}

export function objectValue(f: ObjectFields): MantaObjectValue {
  return {
    dirname: mantaDirname(f.key),
    key: f.key,
    headers: f.headers ?? {},
    mtime: f.mtime,
    name: mantaBasename(f.key),
    creator: f.creator ?? f.owner,
    owner: f.owner,
    roles: [],
    type: 'object',
    contentLength: f.contentLength,
    contentMD5: f.contentMD5,
    contentType: f.contentType,
    etag: f.objectId,
    objectId: f.objectId,
    sharks: f.sharks,
  };
}

export function directoryValue(
  key: string,
  owner: string,
  mtime: number,
  creator?: string,
): MantaDirectoryValue {
  return {
    dirname: mantaDirname(key),
    key,
    headers: {},
    mtime,
    name: mantaBasename(key),
    creator: creator ?? owner,
    owner,
    roles: [],
    type: 'directory',
  };
}

/** A snaplink: a new object row sharing the source's objectId and copies. */
export function linkValue(
  source: MantaObjectValue,
  key: string,
  owner: string,
  mtime: number,
): MantaObjectValue {
  const v: MantaObjectValue = {
    dirname: mantaDirname(key),
    key,
    headers: source.headers,
    mtime,
    name: mantaBasename(key),
    creator: copyOwner(source),
    owner,
    roles: [],
    type: 'object',
    contentLength: source.contentLength,
    contentMD5: source.contentMD5,
    contentType: source.contentType,
    etag: source.etag,
    objectId: source.objectId,
    sharks: source.sharks,
    createdFrom: source.key,
  };
  return v;
}

/** Where a copy lives on a storage node: `/manta/<creator || owner>/<objectId>` (muskie shark_client.js:156). */
export function copyOwner(v: { creator?: string; owner: string }): string {
  return v.creator || v.owner;
}
