import * as assert from "node:assert/strict";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";

/** One Get of the key, through the named replica. */
export interface Read {
  replica: string;
  start: number;
  end: number;
  value: string;
}

export interface ReadsAcrossWrite {
  reads: Read[];
  /** When the write was acknowledged (performance.now()). */
  acked: number;
}

/**
 * Gets of one key by one reader going round the replicas (each begun after
 * the previous returned) until half a second after `write` is acknowledged:
 * the history checkReads judges. A cached and an uncached replica read
 * together must be linearizable (guarantee 3's goal), not only "no read
 * older than an acknowledged write".
 */
export async function readAcrossWrite(
  write: Promise<unknown>,
  replicas: Record<string, AgentstateClient>,
  namespace: string,
  key: string,
): Promise<ReadsAcrossWrite> {
  let acked = Number.POSITIVE_INFINITY;
  void write.then(() => (acked = performance.now()));
  const reads: Read[] = [];
  while (!(performance.now() > acked + 500)) {
    for (const [replica, client] of Object.entries(replicas)) {
      const start = performance.now();
      const g = await client.get({ namespace, key });
      reads.push({ replica, start, end: performance.now(), value: g.item?.value.toString() ?? "" });
    }
  }
  await write;
  return { reads, acked };
}

/**
 * The write replaced "old" by "new": after a Get has returned "new", no Get
 * begun after it returns "old" (and none begun after the ack does).
 */
export function checkReads({ reads, acked }: ReadsAcrossWrite): void {
  const firstNew = reads.find((r) => r.value === "new");
  assert.ok(firstNew, "some Get returned the new value");
  const stale = reads.filter((r) => r.value === "old" && r.start > firstNew.end);
  assert.deepEqual(
    stale.map((r) => `${r.replica} at +${Math.round(r.start - firstNew.end)} ms`),
    [],
    `${stale.length} Gets returned the old value after a Get (on ${firstNew.replica}) had returned the new one (${reads.length} Gets)`,
  );
  assert.ok(
    reads.every((r) => r.start < acked || r.value === "new"),
    "no Get begun after the write was acknowledged returned the old value",
  );
}
