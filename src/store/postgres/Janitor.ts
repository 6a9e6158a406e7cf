/**
 * Janitor: bounded background upkeep so nothing grows without bound. Removes
 * expired keys (each removal is a logged change with its own revision) and
 * expired store items (StoreService; no revisions), trims
 * the history log past its retention (the audit trail of checkpoint and
 * store changes, audit_changes, with it: the same retention) and forgets old
 * idempotency records,
 * and applies the checkpoint retention (keep the latest N per thread and
 * checkpoint ns, remove those older than a TTL except the latest; their
 * pending writes and unreferenced channel values with them), one thread per
 * statement, so a thread's puts wait at most for its own prune.
 * Work is done in small batches so it never blocks writers for long; every
 * replica may run it (rows are taken with SKIP LOCKED or deleted idempotently).
 */
import type { Pool } from "pg";
import type { CheckpointRetention } from "../../domain/checkpoints";
import type { Logger } from "../../log/Logger";
import { Repeat } from "../../domain/repeat";
import { sql } from "./sql";

export interface JanitorOptions {
  intervalMs: number;
  /** kv_history and audit_changes rows older than this are trimmed (0: kept). */
  historyRetentionSeconds: number;
  idempotencyTtlSeconds: number;
  /** 0: keep events forever. */
  eventRetentionSeconds: number;
  /** 0: no per-stream count limit. */
  streamMaxEvents: number;
  /** Unset or all 0: checkpoints are kept. */
  checkpoints?: CheckpointRetention;
  batchSize?: number;
}

export class Janitor {
  private readonly passes: Repeat;

  constructor(
    private readonly pool: Pool,
    private readonly opts: JanitorOptions,
    private readonly log: Logger,
  ) {
    this.passes = new Repeat(
      () =>
        this.runOnce().catch((err: unknown) => this.log.warn("janitor pass failed", { error: (err as Error).message })),
      opts.intervalMs,
    );
  }

  /** The first pass within a second, then every intervalMs after the last one ended. */
  start(): void {
    this.passes.start(Math.min(this.opts.intervalMs, 1000));
  }

  /** No pass starts after this; resolves once the running one (if any) has ended. */
  async stop(): Promise<void> {
    await this.passes.stop();
  }

  /** One full pass; returns how many rows each step removed. */
  async runOnce(): Promise<{
    expired: number;
    items: number;
    history: number;
    audit: number;
    idempotency: number;
    events: number;
    checkpoints: number;
  }> {
    const batch = this.opts.batchSize ?? 500;
    const drain = async (fn: () => Promise<number>) => {
      let total = 0;
      for (let i = 0; i < 100; i++) {
        const n = await fn();
        total += n;
        if (n < batch) break;
      }
      return total;
    };
    // One namespace per statement: each takes only its namespace's revision row.
    const expired = await drain(async () => {
      const nss = (await this.pool.query<{ namespace: string }>(sql("kv_expire_namespaces"), [batch])).rows;
      let removed = 0;
      for (const { namespace } of nss) {
        removed +=
          (await this.pool.query<{ removed: number }>(sql("kv_expire_sweep"), [namespace, batch])).rows[0]?.removed ??
          0;
      }
      return removed;
    });
    const items = await drain(async () => (await this.pool.query(sql("store_expire"), [batch])).rowCount ?? 0);
    const history =
      this.opts.historyRetentionSeconds > 0
        ? await drain(
            async () =>
              (await this.pool.query(sql("history_trim"), [this.opts.historyRetentionSeconds, batch])).rowCount ?? 0,
          )
        : 0;
    const audit =
      this.opts.historyRetentionSeconds > 0
        ? await drain(
            async () =>
              (await this.pool.query(sql("audit_changes_trim"), [this.opts.historyRetentionSeconds, batch])).rowCount ??
              0,
          )
        : 0;
    const idempotency = await drain(
      async () =>
        (await this.pool.query(sql("idempotency_trim"), [this.opts.idempotencyTtlSeconds, batch])).rowCount ?? 0,
    );
    let events = 0;
    if (this.opts.eventRetentionSeconds > 0) {
      events += await drain(
        async () =>
          (await this.pool.query(sql("events_trim_age"), [this.opts.eventRetentionSeconds, batch])).rowCount ?? 0,
      );
    }
    if (this.opts.streamMaxEvents > 0) {
      events += await drain(
        async () => (await this.pool.query(sql("events_trim_count"), [this.opts.streamMaxEvents, batch])).rowCount ?? 0,
      );
    }
    const keep = this.opts.checkpoints?.keepLatest ?? 0;
    const age = this.opts.checkpoints?.maxAgeSeconds ?? 0;
    // Targets a pass finds clean again (a concurrent pass on another replica) end the drain
    // through the batch count, not the removed count.
    let checkpoints = 0;
    if (keep > 0 || age > 0) {
      await drain(async () => {
        const targets = (
          await this.pool.query<{ namespace: string; thread_id: string; checkpoint_ns: string }>(
            sql("checkpoint_retention_targets"),
            [keep, age, batch],
          )
        ).rows;
        for (const t of targets) {
          const r = await this.pool.query<{ removed: string }>(sql("checkpoint_retain"), [
            t.namespace,
            t.thread_id,
            t.checkpoint_ns,
            keep,
            age,
          ]);
          checkpoints += Number(r.rows[0]?.removed ?? 0);
        }
        return targets.length;
      });
    }
    if (expired + items + history + audit + idempotency + events + checkpoints > 0) {
      this.log.debug("janitor pass", { expired, items, history, audit, idempotency, events, checkpoints });
    }
    return { expired, items, history, audit, idempotency, events, checkpoints };
  }
}
