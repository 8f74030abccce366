/**
 * Glossary and path rules of a storage node ("mako", MANTA-REFERENCE §1.8):
 *   root        the node's directory; it plays the part of Manta's `/manta` (nginx `root /manta`)
 *   copy        `<root>/<creator-or-owner>/<objectId>`, both UUIDs (muskie shark_client.js:156)
 *   tombstone   `<root>/tombstone/YYYY-MM-DD/<objectId>` (mako/v1 bin/mako_gc.sh)
 *   quarantine  `<root>/quarantine/YYYY-MM-DD/<objectId>`: a copy repair found corrupt, moved
 *               aside by the same MOVE (docs/audit.md "Repair"); never purged by Remora
 *   temp        `<root>/nginx_temp/…`: uploads in flight (nginx client_body_temp_path)
 *   tombstone   requests (credentialed, tombstone-handlers.ts): `GET /tombstone` (the days),
 *   tree        `DELETE /tombstone/YYYY-MM-DD` (purge a day), `MOVE /tombstone/YYYY-MM-DD/<objectId>`
 *               with `Destination: /<owner>/<objectId>` (restore)
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
export const QUARANTINE_DIR = 'quarantine';
/** The trees a copy can be MOVEd into: GC's tombstone, repair's quarantine. */
export type MoveTree = typeof TOMBSTONE_DIR | typeof QUARANTINE_DIR;
/** Where the manifest is served; not a UUID, so it never collides with an owner directory. */
export const MANIFEST_PATH = '/manifest';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const COPY_RE = new RegExp(`^/(${UUID})/(${UUID})$`);
// The two forms the brief names: relative to /manta, or the full /manta path (as mako_gc.sh spells it).
const TOMBSTONE_RE = new RegExp(
  `^(?:/manta)?/(${TOMBSTONE_DIR}|${QUARANTINE_DIR})/(\\d{4}-\\d{2}-\\d{2})/(${UUID})$`,
);
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
/** The tombstone tree's request targets: exactly these shapes, no query string, no encoding. */
export const TOMBSTONE_PATH = `/${TOMBSTONE_DIR}`;
const TOMBSTONE_DAY_TARGET_RE = new RegExp(`^/${TOMBSTONE_DIR}/(\\d{4}-\\d{2}-\\d{2})$`);
const TOMBSTONE_FILE_TARGET_RE = new RegExp(`^/${TOMBSTONE_DIR}/(\\d{4}-\\d{2}-\\d{2})/(${UUID})$`);
// A restore's Destination: the copy path, relative to /manta or in full (as MOVE's tombstone Destination).
const RESTORE_DESTINATION_RE = new RegExp(`^(?:/manta)?/(${UUID})/(${UUID})$`);

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

/**
 * A `Destination` header of MOVE → the tree (tombstone or quarantine), day and objectId; anything
 * else is InvalidPath.
 */
export function parseTombstoneDestination(dest: string | undefined): {
  tree: MoveTree;
  day: string;
  objectId: string;
} {
  if (dest === undefined) throw invalidPath('MOVE needs a Destination header', '');
  const m = TOMBSTONE_RE.exec(dest);
  if (!m || !isCalendarDay(m[2]!))
    throw invalidPath('MOVE Destination must be /tombstone/YYYY-MM-DD/<objectId> (or /quarantine/…)', dest);
  return { tree: m[1] as MoveTree, day: m[2]!, objectId: m[3]! };
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

export function tombstoneFile(
  root: string,
  day: string,
  objectId: string,
  tree: MoveTree = TOMBSTONE_DIR,
): string {
  return insideRoot(root, tree, day, objectId);
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

export function tombstoneDestination(day: string, objectId: string, tree: MoveTree = TOMBSTONE_DIR): string {
  const dest = `/${tree}/${day}/${objectId}`;
  parseTombstoneDestination(dest);
  return dest;
}

// ---------------------------------------------------------------------------------------------
// The tombstone tree's own requests (tombstone-handlers.ts). Every target that starts with
// `/tombstone` is routed there, behind the internal credential; anything but the three exact
// shapes below is InvalidPath.

/** Whether a request target addresses the tombstone tree (`/tombstone`, `/tombstone/…`, `/tombstone?…`). */
export function isTombstoneTarget(target: string): boolean {
  return (
    target === TOMBSTONE_PATH ||
    target.startsWith(`${TOMBSTONE_PATH}/`) ||
    target.startsWith(`${TOMBSTONE_PATH}?`)
  );
}

/** `/tombstone/YYYY-MM-DD` → the day (a real calendar day); anything else is InvalidPath. */
export function parseTombstoneDayTarget(target: string): string {
  const m = TOMBSTONE_DAY_TARGET_RE.exec(target);
  if (!m || !isCalendarDay(m[1]!))
    throw invalidPath('a tombstone day is /tombstone/YYYY-MM-DD (a calendar day)', target);
  return m[1]!;
}

/** `/tombstone/YYYY-MM-DD/<objectId>` → its parts; anything else is InvalidPath. */
export function parseTombstoneFileTarget(target: string): { day: string; objectId: string } {
  const m = TOMBSTONE_FILE_TARGET_RE.exec(target);
  if (!m || !isCalendarDay(m[1]!))
    throw invalidPath('a tombstoned copy is /tombstone/YYYY-MM-DD/<objectId-uuid> (lower-case)', target);
  return { day: m[1]!, objectId: m[2]! };
}

/**
 * A restore's `Destination` header → the copy it becomes. It must keep the objectId of the
 * tombstoned copy: a restore can never put one object's bytes under another's name.
 */
export function parseRestoreDestination(dest: string | undefined, objectId: string): CopyPath {
  if (dest === undefined) throw invalidPath('a restore needs a Destination header', '');
  const m = RESTORE_DESTINATION_RE.exec(dest);
  if (!m) throw invalidPath('a restore Destination is /<owner-uuid>/<objectId-uuid>', dest);
  if (m[2] !== objectId) throw invalidPath('a restored copy keeps the objectId of its tombstone', dest);
  return { owner: m[1]!, objectId: m[2] };
}

export function tombstoneDayDir(root: string, day: string): string {
  return insideRoot(root, TOMBSTONE_DIR, day);
}

/** Client side: the request path of a tombstone day. Validates so a bad day fails here. */
export function tombstoneDayRequestPath(day: string): string {
  const target = `${TOMBSTONE_PATH}/${day}`;
  parseTombstoneDayTarget(target);
  return target;
}

/** Client side: the request path of a tombstoned copy. */
export function tombstoneFileRequestPath(day: string, objectId: string): string {
  const target = `${TOMBSTONE_PATH}/${day}/${objectId}`;
  parseTombstoneFileTarget(target);
  return target;
}
