/**
 * GroupCommitQueue: the queue behind a group commit (PostgresKvStore's writes,
 * FencingTokenIssuer's tokens). Items wait in arrival order. Whenever fewer
 * than `maxInFlight` batches are running, the next batch is taken from the
 * queue and handed to `run`, which sends it as one statement and settles
 * every item in it; the items that arrive meanwhile gather for the next.
 *
 * A batch takes the queued items in arrival order, up to `maxBatch` items and
 * `maxWeight`, passing over (and leaving queued, in place, for a later batch)
 * an item that would conflict:
 * - `batchKey`: no two items with one batch key share a batch;
 * - `flightKey`: no two batches in flight share a flight key (items of one
 *   flight key may share a batch).
 * An item found `expired` on the way is taken out and rejected unsent.
 */

/** What a queued item must offer: the queue rejects the items it drops. */
export interface Settleable {
  reject(err: unknown): void;
}

export interface GroupCommitOptions<T extends Settleable> {
  /** Most items in one batch. */
  maxBatch: number;
  /** Batches running at once. */
  maxInFlight: number;
  /**
   * Sends one batch and settles every item in it. It may leave some to settle
   * later, outside the batch: once its promise settles, the batch is over and
   * its items' flight keys are free. Should not reject; if it does (a bug),
   * every item of the batch not yet settled is rejected with that error, so
   * no caller is left waiting.
   */
  run: (batch: T[]) => Promise<void>;
  /** Items with the same batch key are never in one batch (undefined: the item has none). */
  batchKey?: (item: T) => string | undefined;
  /** Items with the same flight key are never in two batches in flight at once. */
  flightKey?: (item: T) => string;
  /** Why the item must not be sent any more, or undefined while it may be. */
  expired?: (item: T) => unknown;
  /** The item's share of `maxWeight` (default 0). */
  weight?: (item: T) => number;
  /** Most total weight of a batch; a batch's first item is taken whatever it weighs (default: no limit). */
  maxWeight?: number;
  /** The order a batch is run in, sorted once taken (default: arrival order). */
  compare?: (a: T, b: T) => number;
}

export class GroupCommitQueue<T extends Settleable> {
  private readonly queue: T[] = [];
  private inFlight = 0;
  /** Flight keys of the items in batches in flight. */
  private readonly flightKeys = new Set<string>();

  constructor(private readonly opts: GroupCommitOptions<T>) {}

  /** Queues the item and starts a batch if one may start now. */
  push(item: T): void {
    this.queue.push(item);
    this.startBatches();
  }

  private startBatches(): void {
    const { flightKey } = this.opts;
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const batch = this.takeBatch();
      if (batch.length === 0) return;
      this.inFlight++;
      // Kept apart from `batch`, which is the caller's once run.
      const keys = flightKey === undefined ? undefined : batch.map(flightKey);
      if (keys !== undefined) for (const k of keys) this.flightKeys.add(k);
      void this.opts
        .run(batch)
        .catch((err: unknown) => {
          for (const item of batch) item.reject(err);
        })
        .finally(() => {
          if (keys !== undefined) for (const k of keys) this.flightKeys.delete(k);
          this.inFlight--;
          this.startBatches();
        });
    }
  }

  /** The next batch (empty when every queued item conflicts with a batch in flight). */
  private takeBatch(): T[] {
    const { maxBatch, batchKey, flightKey, expired, weight, maxWeight = Infinity, compare } = this.opts;
    const queue = this.queue;
    const batch: T[] = [];
    const batchKeys = batchKey === undefined ? undefined : new Set<string>();
    let total = 0;
    let i = 0;
    while (i < queue.length && batch.length < maxBatch) {
      const item = queue[i]!;
      const gone = expired?.(item);
      if (gone !== undefined) {
        queue.splice(i, 1);
        item.reject(gone);
        continue;
      }
      const w = weight === undefined ? 0 : weight(item);
      if (batch.length > 0 && total + w > maxWeight) break;
      const bk = batchKey?.(item);
      if (
        (bk !== undefined && batchKeys!.has(bk)) ||
        (flightKey !== undefined && this.flightKeys.has(flightKey(item)))
      ) {
        i++;
        continue;
      }
      if (bk !== undefined) batchKeys!.add(bk);
      total += w;
      batch.push(item);
      queue.splice(i, 1);
    }
    return compare === undefined ? batch : batch.sort(compare);
  }
}
