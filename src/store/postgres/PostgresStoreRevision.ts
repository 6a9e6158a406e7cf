/** PostgresStoreRevision: a namespace's revision as namespace_revisions holds it (see StoreRevision in domain/ports.ts). */
import type { Pool } from "pg";
import type { StoreRevision } from "../../domain/ports";
import { runStatement, sql } from "./sql";

export class PostgresStoreRevision implements StoreRevision {
  constructor(private readonly pool: Pool) {}

  async current(namespace: string): Promise<number> {
    const r = await runStatement<{ store_revision: number }>(this.pool, sql("store_revision"), [namespace]);
    return r.rows[0]?.store_revision ?? 0;
  }
}
