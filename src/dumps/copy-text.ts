/**
 * PostgreSQL COPY text format, as `pg_dump` writes table data in a plain dump:
 *
 *   COPY public.manta (_id, _txn_snap, _key, …) FROM stdin;
 *   <field>\t<field>\t…            one line per row
 *   \.                             end of the table
 *
 * A field is `\N` for SQL NULL; otherwise backslash escapes: `\\`, `\b \f \n \r \t \v`,
 * octal `\ooo`, hex `\xhh`, and `\<c>` = c (PostgreSQL docs, COPY "Text Format").
 * mola's sqltojson only collapsed `\\` (MANATEE-120), which mangled real tabs and newlines in
 * keys; Remora decodes every escape.
 */

/**
 * `COPY [schema.]table (cols) FROM stdin;`. mola's regex had no schema part; pg_dump since
 * PostgreSQL 10.3 (CVE-2018-1058) qualifies names as `public.manta`, so both are accepted.
 */
const COPY_RE = /^COPY (?:"?[\w$]+"?\.)?"?([\w$]+)"? \(([^)]*)\) FROM stdin;$/;

export function parseCopyHeader(line: string): { table: string; columns: string[] } | undefined {
  const m = COPY_RE.exec(line);
  if (!m) return undefined;
  const columns = m[2]!.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
  return { table: m[1]!, columns };
}

const SIMPLE: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** Decode one COPY text field; null for `\N`. */
export function unescapeCopyField(f: string): string | null {
  if (f === '\\N') return null;
  let bs = f.indexOf('\\');
  if (bs === -1) return f;
  // Pieces between escapes, joined a few thousand at a time: appending one character at a time
  // (`out += c`) made a chain of one string object per character — a 20 MB field with an
  // escape took ~700 MB of heap.
  const chunks: string[] = [];
  let parts: string[] = [];
  let from = 0;
  while (bs !== -1) {
    parts.push(f.slice(from, bs));
    if (bs === f.length - 1) {
      parts.push('\\');
      from = f.length;
      break;
    }
    const n = f[bs + 1]!;
    let i = bs + 2;
    if (n in SIMPLE) parts.push(SIMPLE[n]!);
    else if (n >= '0' && n <= '7') {
      const m = /^[0-7]{1,3}/.exec(f.slice(bs + 1, bs + 4))![0];
      parts.push(String.fromCharCode(parseInt(m, 8)));
      i = bs + 1 + m.length;
    } else if (n === 'x' && /[0-9a-fA-F]/.test(f[bs + 2] ?? '')) {
      const m = /^[0-9a-fA-F]{1,2}/.exec(f.slice(bs + 2, bs + 4))![0];
      parts.push(String.fromCharCode(parseInt(m, 16)));
      i = bs + 2 + m.length;
    } else parts.push(n);
    from = i;
    bs = f.indexOf('\\', from);
    if (parts.length >= 4096) {
      chunks.push(parts.join(''));
      parts = [];
    }
  }
  parts.push(f.slice(from));
  chunks.push(parts.join(''));
  return chunks.length === 1 ? chunks[0]! : chunks.join('');
}

/** Encode one value as a COPY text field (the inverse of unescapeCopyField). */
export function escapeCopyField(v: string | null): string {
  if (v === null) return '\\N';
  return v.replace(/[\\\t\n\r\b\f\v]/g, (c) => {
    switch (c) {
      case '\\':
        return '\\\\';
      case '\t':
        return '\\t';
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\b':
        return '\\b';
      case '\f':
        return '\\f';
      default:
        return '\\v';
    }
  });
}
