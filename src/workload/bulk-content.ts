import crypto from 'node:crypto';

/** One pattern; an object of size n holds its first n bytes (grown on demand). */
let pattern = Buffer.alloc(0);
const md5s = new Map<number, string>();

/** Bulk object content: a function of the size only, so MD5s can be cached per size. */
export function bulkContent(size: number): Buffer {
  if (pattern.length < size) {
    const next = Buffer.alloc(Math.max(size, pattern.length * 2, 65536));
    for (let i = 0; i < next.length; i++) next[i] = (i * 31 + 7) & 0xff;
    pattern = next;
  }
  return pattern.subarray(0, size);
}

export function bulkMd5(size: number): string {
  let m = md5s.get(size);
  if (!m) {
    m = crypto.createHash('md5').update(bulkContent(size)).digest('base64');
    md5s.set(size, m);
  }
  return m;
}
