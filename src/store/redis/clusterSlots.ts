/**
 * Redis Cluster hash slots, computed as Redis does: CRC16 (XMODEM) of the
 * key, or of its hash tag (the text between the first `{` and the next `}`,
 * when not empty), modulo 16384. Used to place every cache key of one
 * namespace in one slot, and to name one key in each slot (slotTag).
 */

export const SLOTS = 16384;

const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

function crc16(bytes: Buffer): number {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc;
}

/** The slot Redis Cluster puts `key` in. */
export function keySlot(key: string): number {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key)) % SLOTS;
}

let tags: string[] | undefined;

/**
 * A short hash tag whose keys land in `slot` (the same for every process:
 * the first base-36 number that hashes there). The table is built once, on
 * first use (a few tens of milliseconds).
 */
export function slotTag(slot: number): string {
  if (tags === undefined) {
    const t: string[] = new Array<string>(SLOTS);
    let left = SLOTS;
    for (let n = 0; left > 0; n++) {
      const tag = n.toString(36);
      const s = crc16(Buffer.from(tag)) % SLOTS;
      if (t[s] === undefined) {
        t[s] = tag;
        left--;
      }
    }
    tags = t;
  }
  return tags[slot]!;
}
