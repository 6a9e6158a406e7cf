/**
 * PostgresCacheEpochStore: the cache epoch kept in agentstate_state, with its
 * owner and the cache registrations (agentstate_cache_lease), so every replica
 * agrees on it (see CacheEpochStore in domain/ports.ts). Errors are passed
 * through as the driver raised them: the callers (the lease refreshes) log
 * them and try again.
 */
import type { Pool } from "pg";
import type { CacheEpochStore, CacheLeaseRequest, CacheLeaseState } from "../../domain/ports";
import { byName, sql } from "./sql";

interface LeaseRow {
  epoch: number;
  age_ms: number;
  owner: string | null;
  quiet_ms: number;
  others: string[];
}

export class PostgresCacheEpochStore implements CacheEpochStore {
  constructor(private readonly pool: Pool) {}

  async lease(req: CacheLeaseRequest): Promise<CacheLeaseState | undefined> {
    const st = sql("cache_lease");
    const r = await this.pool.query<LeaseRow>(
      st,
      byName(st, {
        p_identity: req.identity ?? null,
        p_previous: req.previous ?? null,
        p_description: req.description,
        p_lease_ms: req.leaseMs,
        p_may_own: req.mayOwn,
      }),
    );
    const row = r.rows[0];
    return (
      row && {
        epoch: row.epoch,
        ageMs: row.age_ms,
        owner: row.owner,
        quietMs: row.quiet_ms,
        others: row.others,
      }
    );
  }

  async fenceChange(): Promise<number> {
    const r = await this.pool.query<{ wait_ms: number }>(sql("cache_fence_change"), []);
    return r.rows[0]?.wait_ms ?? 0;
  }

  async bump(from?: number): Promise<boolean> {
    const r = await this.pool.query(sql("cache_epoch_bump"), [from ?? null]);
    return r.rowCount === 1;
  }
}
