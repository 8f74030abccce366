/**
 * Some top-level fields of a JSON document held as UTF-8 bytes, without building the document:
 * for a large `_value` (chunk-writer.ts LARGE_ROW_BYTES), whose `JSON.parse` would hold it twice
 * more on the heap (the text as a string, then its parsed strings) for the few fields the chunks
 * type (table-specs.ts VALUE_SHAPE).
 *
 * The whole document is validated as `JSON.parse` does (RFC 8259: whitespace, strings with their
 * escapes and no raw control characters, numbers, literals, nesting — with an explicit stack, so
 * a deeply nested document cannot overflow the call stack); only the members asked for are
 * parsed, with `JSON.parse` of their own bytes. A member given twice: the last wins, as in
 * `JSON.parse`. The bytes must be valid UTF-8 (the caller checked: copy-rows.ts).
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function isHex(c: number | undefined): boolean {
  return (
    c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66))
  );
}

/** End of the string starting at `i` (its opening quote), after the closing quote; -1 if invalid. */
function skipString(b: Buffer, i: number, end: number): number {
  i++;
  while (i < end) {
    const c = b[i]!;
    if (c === QUOTE) return i + 1;
    if (c < 0x20) return -1;
    if (c === BACKSLASH) {
      const e = b[i + 1];
      if (e === 0x75) {
        if (!(isHex(b[i + 2]) && isHex(b[i + 3]) && isHex(b[i + 4]) && isHex(b[i + 5]))) return -1;
        i += 6;
      } else if (
        e === QUOTE ||
        e === BACKSLASH ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      )
        i += 2;
      else return -1;
      continue;
    }
    i++;
  }
  return -1;
}

/** End of the number starting at `i`; -1 if invalid. */
function skipNumber(b: Buffer, i: number, end: number): number {
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else if (isDigit(b[i])) while (i < end && isDigit(b[i])) i++;
  else return -1;
  if (b[i] === 0x2e) {
    i++;
    if (!isDigit(b[i])) return -1;
    while (i < end && isDigit(b[i])) i++;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!isDigit(b[i])) return -1;
    while (i < end && isDigit(b[i])) i++;
  }
  return i > end ? -1 : i;
}

function skipLiteral(b: Buffer, i: number, end: number, word: string): number {
  if (i + word.length > end) return -1;
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) return -1;
  return i + word.length;
}

/** A member's `"key" :` at i: the key's [start, end) and the position after the colon. */
function readMemberKey(b: Buffer, i: number, end: number): [number, number, number] | undefined {
  if (b[i] !== QUOTE) return undefined;
  const ke = skipString(b, i, end);
  if (ke < 0) return undefined;
  const colon = skipWs(b, ke, end);
  return b[colon] === 0x3a ? [i, ke, colon + 1] : undefined;
}

function skipWs(b: Buffer, i: number, end: number): number {
  while (i < end && isWs(b[i])) i++;
  return i;
}

/** End of the scalar (string, number, literal) at `i`; -1 if none is there. */
function skipScalar(b: Buffer, i: number, end: number): number {
  const c = b[i];
  if (c === QUOTE) return skipString(b, i, end);
  if (c === 0x74) return skipLiteral(b, i, end, 'true');
  if (c === 0x66) return skipLiteral(b, i, end, 'false');
  if (c === 0x6e) return skipLiteral(b, i, end, 'null');
  return skipNumber(b, i, end);
}

/**
 * End of the value at `i` (whitespace before it skipped by the caller), validating all of it; -1
 * if invalid. `onMember(keyStart, keyEnd, valueStart, valueEnd)` is called for every member of
 * the outermost object (depth 1) only.
 */
function skipValue(
  b: Buffer,
  i: number,
  end: number,
  onMember?: (ks: number, ke: number, vs: number, ve: number) => void,
): number {
  // Each open container: '{' or '['; and for depth 1, the member being read.
  const stack: number[] = [];
  let key = [-1, -1];
  let valueStart = -1;
  for (;;) {
    i = skipWs(b, i, end);
    if (i >= end) return -1;
    const c = b[i]!;
    if (c === 0x7b || c === 0x5b) {
      if (stack.length === 1 && stack[0] === 0x7b) valueStart = i;
      stack.push(c);
      i = skipWs(b, i + 1, end);
      const close = c === 0x7b ? 0x7d : 0x5d;
      if (b[i] === close) {
        stack.pop();
        i++;
      } else if (c === 0x7b) {
        const k = readMemberKey(b, i, end);
        if (!k) return -1;
        if (stack.length === 1) key = [k[0], k[1]];
        i = k[2];
        continue; // read the member's value
      } else continue; // read the first element
    } else {
      if (stack.length === 1 && stack[0] === 0x7b) valueStart = i;
      i = skipScalar(b, i, end);
      if (i < 0) return -1;
    }
    // A value ended at i: close containers, or go on to the next member or element.
    for (;;) {
      if (stack.length === 0) return i;
      if (stack.length === 1 && stack[0] === 0x7b && valueStart >= 0) {
        onMember?.(key[0]!, key[1]!, valueStart, i);
        valueStart = -1;
      }
      i = skipWs(b, i, end);
      const top = stack[stack.length - 1]!;
      if (b[i] === 0x2c) {
        i = skipWs(b, i + 1, end);
        if (top === 0x7b) {
          const k = readMemberKey(b, i, end);
          if (!k) return -1;
          if (stack.length === 1) key = [k[0], k[1]];
          i = k[2];
        }
        break; // read the next value
      }
      if (b[i] !== (top === 0x7b ? 0x7d : 0x5d)) return -1;
      stack.pop();
      i++;
    }
  }
}

/**
 * The members `names` of the JSON document `b` (all of `b`: pass a subarray), as the JSON of an
 * object holding just them, in the order of `names` (a member given twice: the last); null when
 * the bytes are not JSON or are JSON `null`; `{}` when they are JSON but not an object. The same
 * as `JSON.stringify(pick(JSON.parse(text), names))` (table-specs.ts extractValueFields).
 */
export function pickJsonFields(b: Buffer, names: readonly string[]): string | null {
  const end = b.length;
  const i = skipWs(b, 0, end);
  const first = b[i];
  const wanted = new Set(names);
  const found = new Map<string, [number, number]>();
  const after = skipValue(b, i, end, (ks, ke, vs, ve) => {
    const name = JSON.parse(b.toString('utf8', ks, ke)) as string;
    if (wanted.has(name)) found.set(name, [vs, ve]);
  });
  if (after < 0 || skipWs(b, after, end) !== end) return null;
  if (first === 0x6e) return null; // JSON null
  if (first !== 0x7b) return '{}';
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const r = found.get(name);
    if (r) out[name] = JSON.parse(b.toString('utf8', r[0], r[1]));
  }
  return JSON.stringify(out);
}
