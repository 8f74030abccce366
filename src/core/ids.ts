/** Identifiers and path pieces shared by every tier. */

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

/** Namespaces under an account's root, in the metering order (MANTA-REFERENCE §3.6). */
export const NAMESPACES = ['stor', 'public', 'jobs', 'reports'] as const;
export type Namespace = (typeof NAMESPACES)[number];
/** Every top-level directory the front door accepts under `/<account>`. */
export const ALL_NAMESPACES = ['stor', 'public', 'jobs', 'reports', 'uploads'] as const;

/**
 * moray's dirname: `path.dirname(key)`, except that `/<uuid>/stor` (and the other
 * account-root directories) are their own dirname (libmanta ROOT_RE).
 */
export function mantaDirname(key: string): string {
  const parts = key.split('/');
  if (
    parts.length === 3 &&
    parts[0] === '' &&
    (ALL_NAMESPACES as readonly string[]).includes(parts[2] ?? '')
  ) {
    return key;
  }
  const i = key.lastIndexOf('/');
  return i <= 0 ? '/' : key.slice(0, i);
}

export function mantaBasename(key: string): string {
  const i = key.lastIndexOf('/');
  return key.slice(i + 1);
}

/** `/<owner>/<namespace>/...` → namespace; undefined when the key is too short. */
export function namespaceOf(key: string): string | undefined {
  return key.split('/')[2];
}
