/**
 * PostgresCacheEpochStore: the cache epoch kept in agentstate_state, with its
 * owner and the cache registrations (agentstate_cache_lease), and the
 * namespaces' epochs beside their revisions (agentstate_cache_move,
 * migrations/0019), so every replica agrees on them (see CacheEpochStore in
 * domain/ports.ts). Errors are passed through as the driver raised them: the
 * callers (the lease refreshes) log them and try again.
 */
import type { Pool } from "pg";
import type { CacheEpochStore, CacheLeaseRequest, CacheLeaseState } from "../../domain/ports";
import { byName, sql } from "./sql";

/** Most namespace moves one lease read returns (CacheLeaseState.movesMore beyond). */
export const NS_MOVES_PAGE = 5000;

interface LeaseRow {
  epoch: number;
  age_ms: number;
  owner: string | null;
  quiet_ms: number;
  others: string[];
  ns_moved: string[] | null;
  // bigint[]: the driver parses only scalar int8 (createPool)
  ns_move_seq: string[] | null;
  ns_age_ms: string[] | null;
  ns_more: boolean | null;
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
        p_ns_epochs: req.nsMoves !== undefined,
        p_ns_epoch: req.nsMoves?.epoch ?? null,
        p_ns_after: req.nsMoves?.after ?? 0,
        p_ns_limit: NS_MOVES_PAGE,
      }),
    );
    const row = r.rows[0];
    if (!row) return undefined;
    const moved = row.ns_moved ?? [];
    return {
      epoch: row.epoch,
      ageMs: row.age_ms,
      owner: row.owner,
      quietMs: row.quiet_ms,
      others: row.others,
      moves: moved.map((namespace, i) => ({
        namespace,
        nsEpoch: Number(row.ns_move_seq![i]),
        ageMs: Number(row.ns_age_ms![i]),
      })),
      movesMore: row.ns_more === true,
    };
  }

  async fenceChange(namespace: string): Promise<number> {
    return this.move(namespace, true);
  }

  async moveNamespace(namespace: string): Promise<number> {
    return this.move(namespace, false);
  }

  async changeWaitMs(namespace: string): Promise<number> {
    const r = await this.pool.query<{ wait_ms: string }>(sql("cache_change_wait"), [namespace]);
    return Number(r.rows[0]?.wait_ms ?? 0);
  }

  private async move(namespace: string, ifOwned: boolean): Promise<number> {
    const st = sql("cache_move");
    const r = await this.pool.query<{ wait_ms: number }>(st, byName(st, { p_ns: namespace, p_if_owned: ifOwned }));
    return r.rows[0]?.wait_ms ?? 0;
  }

  async bump(from?: number, fenceLeases = false): Promise<boolean> {
    const r = await this.pool.query(sql("cache_epoch_bump"), [from ?? null, fenceLeases]);
    return r.rowCount === 1;
  }
}
