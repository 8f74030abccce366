/** PostgreSQL COPY text format: one row per line, tab-separated, `\N` for NULL. */

const NEEDS_ESCAPE = /[\\\t\n\r]/;

export function copyField(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'number') return String(v);
  if (!NEEDS_ESCAPE.test(v)) return v;
  let out = '';
  let last = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    let rep: string | undefined;
    if (c === 92) rep = '\\\\';
    else if (c === 9) rep = '\\t';
    else if (c === 10) rep = '\\n';
    else if (c === 13) rep = '\\r';
    if (rep) {
      out += v.slice(last, i) + rep;
      last = i + 1;
    }
  }
  return last === 0 ? v : out + v.slice(last);
}

export function copyLine(fields: (string | number | null | undefined)[]): string {
  return `${fields.map(copyField).join('\t')}\n`;
}
