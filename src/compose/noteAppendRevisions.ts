/**
 * The event store as the service sees it when the cache is on: every applied,
 * non-replayed append's revision is told to `noteRevision` (the cache's known
 * revision of the append's namespace) before the append is acknowledged, so a
 * later cache hit never reports a lower revision than an acknowledged append
 * in its namespace. The reply waits
 * for it, as it waits for the commit, and then for the end of the leases on
 * an epoch the namespace's last move replaced (`cacheWaitMs`, migrations/0020),
 * since the revision was noted in the new one. Reads pass straight through.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { EventStore } from "../domain/events";

/** Added to a wait the truth counted, for the clocks' drift and the lease reads' round trips. */
const WAIT_MARGIN_MS = 50;

export function noteAppendRevisions(
  inner: EventStore,
  noteRevision: (namespace: string, revision: number) => Promise<void>,
): EventStore {
  return {
    append: async (cmd, opts) => {
      const { cacheWaitMs, ...o } = await inner.append(cmd, opts);
      const until = cacheWaitMs === undefined ? 0 : performance.now() + cacheWaitMs + WAIT_MARGIN_MS;
      if (o.applied && !o.replayed) await noteRevision(cmd.namespace, o.revision);
      const left = until - performance.now();
      if (left > 0) await sleep(left);
      return o;
    },
    readStream: (...args) => inner.readStream(...args),
    streamVersion: (...args) => inner.streamVersion(...args),
    readAfter: (...args) => inner.readAfter(...args),
    latestPositions: (...args) => inner.latestPositions(...args),
  };
}
