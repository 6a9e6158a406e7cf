/**
 * PostgresCacheEpochStore: the cache epoch kept in agentstate_state, so every
 * replica agrees on it (see CacheEpochStore in domain/ports.ts). Errors are
 * passed through as the driver raised them: the only caller (the cache's
 * lease refresh) logs them and tries again.
 */
import type { Pool } from "pg";
import type { CacheEpochState, CacheEpochStore } from "../../domain/ports";
import { sql } from "./sql";

export class PostgresCacheEpochStore implements CacheEpochStore {
  constructor(private readonly pool: Pool) {}

  async read(): Promise<CacheEpochState | undefined> {
    const r = await this.pool.query<{ cache_epoch: number; age_ms: number }>(sql("cache_epoch_read"), []);
    const row = r.rows[0];
    return row && { epoch: row.cache_epoch, ageMs: row.age_ms };
  }

  async bump(from?: number): Promise<boolean> {
    const r = await this.pool.query(sql("cache_epoch_bump"), [from ?? null]);
    return r.rowCount === 1;
  }
}
