/**
 * Glossary and path rules of a storage node ("mako", MANTA-REFERENCE §1.8):
 *   root        the node's directory; it plays the part of Manta's `/manta` (nginx `root /manta`)
 *   copy        `<root>/<creator-or-owner>/<objectId>`, both UUIDs (muskie shark_client.js:156)
 *   tombstone   `<root>/tombstone/YYYY-MM-DD/<objectId>` (mako/v1 bin/mako_gc.sh)
 *   temp        `<root>/nginx_temp/…`: uploads in flight (nginx client_body_temp_path)
 *
 * Validation is a whitelist on the raw request target, before any decoding: a copy path is
 * exactly `/<uuid>/<uuid>`, so `..`, `%2e%2e`, `%2F`, `//`, backslashes, NUL and absolute-form
 * targets cannot match. The resolved path is then checked to be inside the root as a second,
 * independent guard (defence in depth: a future relaxation of the pattern must not open a hole).
 */
import path from 'node:path';
import { RemoraError } from '../core/errors.js';

export const TEMP_DIR = 'nginx_temp';
export const TOMBSTONE_DIR = 'tombstone';
/** Where the manifest is served; not a UUID, so it never collides with an owner directory. */
export const MANIFEST_PATH = '/manifest';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const COPY_RE = new RegExp(`^/(${UUID})/(${UUID})$`);
// The two forms the brief names: relative to /manta, or the full /manta path (as mako_gc.sh spells it).
const TOMBSTONE_RE = new RegExp(`^(?:/manta)?/${TOMBSTONE_DIR}/(\\d{4}-\\d{2}-\\d{2})/(${UUID})$`);
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

export interface CopyPath {
  owner: string;
  objectId: string;
}

export function invalidPath(message: string, target: string): RemoraError {
  return new RemoraError('InvalidPath', message, { details: { path: target.slice(0, 200) } });
}

/** The request target without its query string (nginx ignores `?…` for static files too). */
function withoutQuery(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/** `/<owner>/<objectId>` → its parts; anything else is InvalidPath. Owner and objectId are lower-cased UUIDs. */
export function parseCopyTarget(target: string): CopyPath {
  const m = COPY_RE.exec(withoutQuery(target));
  if (!m) throw invalidPath('a copy path is /<owner-uuid>/<objectId-uuid> (lower-case, no encoding)', target);
  return { owner: m[1]!, objectId: m[2]! };
}

/** A `Destination` header of MOVE → the tombstone day and objectId; anything else is InvalidPath. */
export function parseTombstoneDestination(dest: string | undefined): { day: string; objectId: string } {
  if (dest === undefined) throw invalidPath('MOVE needs a Destination header', '');
  const m = TOMBSTONE_RE.exec(dest);
  if (!m || !isCalendarDay(m[1]!))
    throw invalidPath('MOVE Destination must be /tombstone/YYYY-MM-DD/<objectId>', dest);
  return { day: m[1]!, objectId: m[2]! };
}

export function isCalendarDay(day: string): boolean {
  if (!DAY_RE.test(day)) return false;
  const d = new Date(`${day}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === day;
}

/** Join parts under root and prove the result stays inside it (second guard after the whitelist). */
export function insideRoot(root: string, ...parts: string[]): string {
  const resolvedRoot = path.resolve(root);
  const p = path.resolve(resolvedRoot, ...parts);
  if (!p.startsWith(resolvedRoot + path.sep))
    throw invalidPath('path escapes the storage root', parts.join('/'));
  return p;
}

export function copyFile(root: string, c: CopyPath): string {
  return insideRoot(root, c.owner, c.objectId);
}

export function tombstoneFile(root: string, day: string, objectId: string): string {
  return insideRoot(root, TOMBSTONE_DIR, day, objectId);
}

/** `/manta/...` path of a file under root, as the manifest and the original `find /manta` print it. */
export function mantaPath(root: string, file: string): string {
  return `/manta/${path.relative(root, file).split(path.sep).join('/')}`;
}

/** Client side: the request path of a copy. Validates so a bad id fails here, not on the wire. */
export function copyRequestPath(owner: string, objectId: string): string {
  const target = `/${owner}/${objectId}`;
  parseCopyTarget(target);
  return target;
}

export function tombstoneDestination(day: string, objectId: string): string {
  const dest = `/${TOMBSTONE_DIR}/${day}/${objectId}`;
  parseTombstoneDestination(dest);
  return dest;
}
