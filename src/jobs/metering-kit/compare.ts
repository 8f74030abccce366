/**
 * Side-by-side comparison (RFD 16 "Incremental development and rollout"): Remora's operator file
 * for a day or hour against the original's file of the same shape (JSON lines, one per owner).
 * Pure: two texts in, the differences out, per owner and field (dotted path). Values compare as
 * text, so the original's numbers and Remora's decimal strings agree when they are equal.
 */
import { RemoraError } from '../../core/errors.js';

export interface Difference {
  owner: string;
  /** Dotted path of the field, or `(record)` when the owner is on one side only. */
  field: string;
  ours: string;
  theirs: string;
}

function flatten(v: unknown, prefix: string, out: Map<string, string>): void {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));
}

/** Parse a report's lines by owner; a line that is not a JSON object with an owner is MalformedInput. */
export function recordsByOwner(text: string, what: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new RemoraError('MalformedInput', `${what}, line ${i + 1}: not JSON: ${line.slice(0, 120)}`);
    }
    const owner = (v as { owner?: unknown } | null)?.owner;
    if (typeof owner !== 'string')
      throw new RemoraError(
        'MalformedInput',
        `${what}, line ${i + 1}: no "owner": is it an operator file of the same report?`,
      );
    const fields = new Map<string, string>();
    flatten(v, '', fields);
    fields.delete('owner');
    out.set(owner, fields);
  });
  return out;
}

export function compareReports(ours: string, theirs: string): Difference[] {
  const a = recordsByOwner(ours, "Remora's report");
  const b = recordsByOwner(theirs, 'the file compared against');
  const diffs: Difference[] = [];
  for (const owner of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(owner);
    const y = b.get(owner);
    if (!x || !y) {
      diffs.push({
        owner,
        field: '(record)',
        ours: x ? 'present' : 'absent',
        theirs: y ? 'present' : 'absent',
      });
      continue;
    }
    for (const field of [...new Set([...x.keys(), ...y.keys()])].sort()) {
      const o = x.get(field) ?? '(absent)';
      const t = y.get(field) ?? '(absent)';
      if (o !== t) diffs.push({ owner, field, ours: o, theirs: t });
    }
  }
  return diffs;
}
