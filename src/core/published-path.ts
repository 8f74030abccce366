/**
 * Where Remora publishes a file the original system also writes: side-by-side mode (RFD 16
 * "Incremental development and rollout": run the new system beside the old one, compare, then
 * switch). `pipeline.outputPrefix` (src/config/config.ts) moves every such file out of the
 * original's way; unset, Remora writes the original's paths (it replaces the original).
 *
 * The mapping — the ONLY place that knows it (jobs compute the original's path, then ask here):
 *
 *   operator files   P                         → <prefix>P
 *                    /poseidon/stor/usage/storage/2024/04/01/00/h00.json
 *                  → /poseidon/stor/remora/poseidon/stor/usage/storage/2024/04/01/00/h00.json
 *   account files    /<login>/reports/<rest>   → /<login>/reports/<tag>/<rest>, tag = the prefix's last segment
 *                    /alice/reports/usage/request/2024/04/01/05/h05.json
 *                  → /alice/reports/remora/usage/request/2024/04/01/05/h05.json
 *
 * Why so: an operator diffs the two trees by stripping the prefix (`diff -r` of one directory
 * against its twin); an account's copies stay inside the account's own `reports` directory,
 * where the original put them and where the account may read them, one directory beside the
 * original's `usage/` and `access-logs/`, never inside them. Inputs (the original's logs,
 * dumps and listings) are never mapped: Remora reads what the original reads.
 *
 * A valid prefix (`outputPrefixProblem`): absolute, normalized (no `.`/`..`/empty segment, no
 * trailing `/`), in the operator's namespace `/poseidon/stor/`, outside every directory the
 * original writes (so its own listings never see Remora's files), and with a last segment that
 * is not one of the original's report directories (`usage`, `access-logs`).
 */

/** Directories the original system writes under; a prefix inside one would put files among its own. */
export const ORIGINAL_ROOTS = [
  '/poseidon/stor/usage',
  '/poseidon/stor/logs',
  '/poseidon/stor/mako',
  '/poseidon/stor/manatee_backups',
  '/poseidon/stor/manta_cruft',
  '/poseidon/stor/manta_rebalance',
  '/poseidon/stor/manta_gc',
  '/poseidon/stor/manta_mpu_gc',
  '/poseidon/stor/manta_pg_transform',
] as const;

/** The directories the original created in an account's `reports` (deliver-usage, deliver-access). */
const ACCOUNT_REPORT_DIRS = new Set(['usage', 'access-logs']);

const SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const ACCOUNT_REPORTS_RE = /^\/([^/]+)\/reports(\/.*)?$/;

/** Why `prefix` cannot be an output prefix, or undefined when it can. */
export function outputPrefixProblem(prefix: string): string | undefined {
  if (!prefix.startsWith('/')) return 'must be an absolute path such as /poseidon/stor/remora';
  if (prefix.endsWith('/')) return 'must not end with "/" (e.g. /poseidon/stor/remora)';
  const segments = prefix.slice(1).split('/');
  const bad = segments.find((s) => !SEGMENT_RE.test(s));
  if (bad !== undefined)
    return `must be a normalized path: segment "${bad}" is empty, "." or "..", or has characters other than letters, digits, ".", "_", "-"`;
  if (segments[0] !== 'poseidon' || segments[1] !== 'stor' || segments.length < 3)
    return "must be a directory in the operator's namespace, under /poseidon/stor/ (e.g. /poseidon/stor/remora)";
  const inside = ORIGINAL_ROOTS.find((r) => prefix === r || prefix.startsWith(`${r}/`));
  if (inside) return `must not be inside ${inside}, where the original system writes its own files`;
  const tag = segments.at(-1)!;
  if (ACCOUNT_REPORT_DIRS.has(tag))
    return `must not end in "${tag}": accounts' copies go to /<login>/reports/<last segment>/, and reports/${tag} is the original's`;
  return undefined;
}

/**
 * The path at which Remora publishes a file whose path in the original system is `original`:
 * `original` itself without a prefix; see the header for the mapping with one. `prefix` is
 * assumed valid (checked at configuration load).
 */
export function publishedPath(prefix: string | undefined, original: string): string {
  if (prefix === undefined) return original;
  const account = ACCOUNT_REPORTS_RE.exec(original);
  if (account)
    return `/${account[1]}/reports/${prefix.slice(prefix.lastIndexOf('/') + 1)}${account[2] ?? ''}`;
  return `${prefix}${original}`;
}
