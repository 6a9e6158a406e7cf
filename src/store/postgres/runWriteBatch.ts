/**
 * runWriteBatch: sends one batch of a group commit (KV writes, appends) as
 * one statement and settles every item in it, the same way for each kind:
 * - items whose caller has gone or whose deadline has passed are answered
 *   unsent (checked again before every attempt);
 * - a deadlock or serialization failure sends the batch again;
 * - a failure that is not the database being unavailable is looked for by
 *   running each item alone, so one bad item fails only itself;
 * - an item the statement answers `busy` (a row another transaction holds)
 *   is run alone at once, waiting for that row, so it never stalls the batch.
 * The statement answers one row per item, with the item's 1-based `idx`.
 */
import { AppError } from "../../errors/errors";
import { isRetryableConflict, translatePgError } from "./pgErrors";

/** An item of a batch: settled exactly once with its own outcome or error. */
export interface BatchItem<O> {
  resolve(outcome: O): void;
  reject(err: unknown): void;
}

/** What a statement answers per item. */
export interface BatchRow {
  idx: number;
  status: number;
}

export interface WriteBatchSpec<P extends BatchItem<O>, R extends BatchRow, O> {
  /** Why the item must not be sent any more, or undefined while it may be. */
  tooLate(item: P): unknown;
  /** Sends the batch as one statement. `wait` false: answer `busy` instead of waiting for a held row. */
  send(batch: P[], wait: boolean): Promise<R[]>;
  /** How to treat a failure before the generic rules: send again, or run each item alone. */
  onError?(err: unknown, size: number): "retry" | "alone" | undefined;
  /** The status that means `busy`. */
  busyStatus: number;
  /** The error for an item still busy when run alone (it waited, and still could not take its row). */
  busyError(): unknown;
  /** The item's outcome from its row; throws the item's own error (refusal). */
  settle(item: P, row: R): O;
}

const MAX_CONFLICT_RETRIES = 5;

export async function runWriteBatch<P extends BatchItem<O>, R extends BatchRow, O>(
  batch: P[],
  wait: boolean,
  spec: WriteBatchSpec<P, R, O>,
): Promise<void> {
  const eachAlone = async (items: P[]) => {
    await Promise.all(items.map((p) => runWriteBatch([p], true, spec)));
  };
  let rows: R[];
  for (let attempt = 0; ; attempt++) {
    batch = batch.filter((p) => {
      const gone = spec.tooLate(p);
      if (gone !== undefined) p.reject(gone);
      return gone === undefined;
    });
    if (batch.length === 0) return;
    try {
      rows = await spec.send(batch, wait);
      break;
    } catch (err) {
      const action = spec.onError?.(err, batch.length);
      if (action === "alone" && batch.length > 1) return eachAlone(batch);
      if ((action === "retry" || isRetryableConflict(err)) && attempt < MAX_CONFLICT_RETRIES) continue;
      const e = translatePgError(err, true);
      // Not the database being unavailable: find the item it belongs to.
      if (batch.length > 1 && !(e instanceof AppError)) return eachAlone(batch);
      for (const p of batch) p.reject(e);
      return;
    }
  }
  for (const row of rows) {
    const p = batch[row.idx - 1];
    if (!p) continue;
    if (row.status === spec.busyStatus) {
      if (wait) p.reject(spec.busyError());
      else void runWriteBatch([p], true, spec);
      continue;
    }
    try {
      p.resolve(spec.settle(p, row));
    } catch (err) {
      p.reject(err);
    }
  }
}
