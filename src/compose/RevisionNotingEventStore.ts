/**
 * An EventStore that tells `noteRevision` (the cache's known store revision)
 * the revision of every applied, non-replayed append before the append is
 * acknowledged, so a later cache hit never reports a lower revision than an
 * acknowledged append. The reply waits for it, as it waits for the commit.
 */
import type { AppendCommand, AppendOutcome, EventStore, RecordedEvent, SubscriptionTarget } from "../domain/events";
import type { WriteOptions } from "../domain/types";

export class RevisionNotingEventStore implements EventStore {
  constructor(
    private readonly inner: EventStore,
    private readonly noteRevision: (revision: number) => Promise<void>,
  ) {}

  async append(cmd: AppendCommand, opts?: WriteOptions): Promise<AppendOutcome> {
    const o = await this.inner.append(cmd, opts);
    if (o.applied && !o.replayed) await this.noteRevision(o.revision);
    return o;
  }

  readStream(
    namespace: string,
    stream: string,
    fromVersion: number,
    direction: "forwards" | "backwards",
    limit: number,
  ): Promise<RecordedEvent[]> {
    return this.inner.readStream(namespace, stream, fromVersion, direction, limit);
  }

  streamVersion(namespace: string, stream: string): Promise<number> {
    return this.inner.streamVersion(namespace, stream);
  }

  readAfter(namespace: string, target: SubscriptionTarget, after: number, limit: number): Promise<RecordedEvent[]> {
    return this.inner.readAfter(namespace, target, after, limit);
  }
}
