/**
 * CRC32 (IEEE 802.3, the polynomial of node-crc's crc32) as moray computes `_etag`:
 * `crc.hex32(crc.crc32(_value))`, 8 upper-case hex characters [moray lib/objects/put.js:53].
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: string | Uint8Array): number {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    crc = TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** moray's `_etag` of a serialized value. */
export function morayEtag(value: string): string {
  return crc32(value).toString(16).toUpperCase().padStart(8, '0');
}
