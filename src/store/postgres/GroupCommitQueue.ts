/**
 * GroupCommitQueue: the queue behind a group commit (PostgresKvStore's writes,
 * PostgresEventStore's appends, FencingTokenIssuer's tokens). Items wait in
 * arrival order. Whenever a batch may start, the next batch is taken from the
 * queue and handed to `run`, which sends it as one statement and settles
 * every item in it; the items that arrive meanwhile gather for the next.
 *
 * Items may be split by `partition` (the namespace, for writes and appends):
 * a batch holds items of one partition only, so it touches one namespace's
 * rows and never waits behind another namespace's revision row, and batches
 * of different partitions run at once, each on its own pool connection.
 * At most `maxInFlight` batches run at once in all, and at most
 * `maxInFlightPerPartition` of one partition, so one busy partition cannot
 * take every connection; partitions with items waiting take turns (the one
 * served longest ago goes first).
 *
 * A batch takes its partition's queued items in arrival order, up to
 * `maxBatch` items and `maxWeight`, passing over (and leaving queued, in
 * place, for a later batch) an item that would conflict:
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
  /** Batches running at once, over every partition. */
  maxInFlight: number;
  /** Batches of one partition running at once (default: maxInFlight). */
  maxInFlightPerPartition?: number;
  /** The item's partition: a batch holds items of one partition (default: every item in one). */
  partition?: (item: T) => string;
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
  /** Queued items per partition, in arrival order (no empty queue). */
  private readonly queues = new Map<string, T[]>();
  private inFlight = 0;
  private readonly partitionInFlight = new Map<string, number>();
  /** When each partition with items queued or in flight last started a batch (a count of batches). */
  private readonly lastServed = new Map<string, number>();
  private served = 0;
  /** Flight keys of the items in batches in flight. */
  private readonly flightKeys = new Set<string>();

  constructor(private readonly opts: GroupCommitOptions<T>) {}

  /** Queues the item and starts a batch if one may start now. */
  push(item: T): void {
    const part = this.opts.partition?.(item) ?? "";
    const queue = this.queues.get(part);
    if (queue === undefined) this.queues.set(part, [item]);
    else queue.push(item);
    this.startBatches();
  }

  private startBatches(): void {
    const perPartition = this.opts.maxInFlightPerPartition ?? this.opts.maxInFlight;
    while (this.inFlight < this.opts.maxInFlight && this.queues.size > 0) {
      // The partitions that may start a batch, the one served longest ago first.
      const turns: string[] = [];
      for (const part of this.queues.keys()) {
        if ((this.partitionInFlight.get(part) ?? 0) < perPartition) turns.push(part);
      }
      turns.sort((a, b) => (this.lastServed.get(a) ?? 0) - (this.lastServed.get(b) ?? 0));
      let started = false;
      for (const part of turns) {
        const queue = this.queues.get(part)!;
        const batch = this.takeBatch(queue);
        if (queue.length === 0) {
          this.queues.delete(part);
          if (!this.partitionInFlight.has(part)) this.lastServed.delete(part);
        }
        // Empty: every item conflicts with a batch in flight (or has expired).
        if (batch.length === 0) continue;
        this.start(part, batch);
        started = true;
        break;
      }
      if (!started) return;
    }
  }

  private start(part: string, batch: T[]): void {
    const { flightKey } = this.opts;
    this.inFlight++;
    this.partitionInFlight.set(part, (this.partitionInFlight.get(part) ?? 0) + 1);
    this.lastServed.set(part, ++this.served);
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
        const n = this.partitionInFlight.get(part)! - 1;
        if (n > 0) this.partitionInFlight.set(part, n);
        else {
          this.partitionInFlight.delete(part);
          if (!this.queues.has(part)) this.lastServed.delete(part);
        }
        this.startBatches();
      });
  }

  /** The next batch of `queue` (empty when every queued item conflicts with a batch in flight). */
  private takeBatch(queue: T[]): T[] {
    const { maxBatch, batchKey, flightKey, expired, weight, maxWeight = Infinity, compare } = this.opts;
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
