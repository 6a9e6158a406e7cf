/**
 * The event store as the service sees it when the cache is on: every applied,
 * non-replayed append's revision is told to `noteRevision` (the cache's known
 * revision of the append's namespace) before the append is acknowledged, so a
 * later cache hit never reports a lower revision than an acknowledged append
 * in its namespace. The reply waits
 * for it, as it waits for the commit. The truth's `cacheWaitMs` (the end of
 * the leases on an epoch a recent move replaced, migrations/0020) goes with
 * it: the revision is noted in the new epoch, so `noteRevision` holds the
 * reply until then, as the cache holds a write's (CachedKvStore.waitOut).
 * `keyBase` is read before the append is sent and handed to the note: the
 * truth's wait cannot count a move committed after the append, so a move seen
 * between the two fences the append instead (CacheEpoch.noteRevision).
 * Reads pass straight through.
 */
import type { EventStore } from "../domain/events";

export function noteAppendRevisions(
  inner: EventStore,
  noteRevision: (
    namespace: string,
    revision: number,
    waitMs: number | undefined,
    keyBaseBefore: string | undefined,
  ) => Promise<void>,
  keyBase: (namespace: string) => string | undefined,
): EventStore {
  return {
    append: async (cmd, opts) => {
      const before = keyBase(cmd.namespace);
      const { cacheWaitMs, ...o } = await inner.append(cmd, opts);
      if (o.applied && !o.replayed) await noteRevision(cmd.namespace, o.revision, cacheWaitMs, before);
      return o;
    },
    readStream: (...args) => inner.readStream(...args),
    streamVersion: (...args) => inner.streamVersion(...args),
    readAfter: (...args) => inner.readAfter(...args),
    latestPositions: (...args) => inner.latestPositions(...args),
  };
}
