/**
 * PostgresTokenStore: API tokens in `auth_tokens` (migrations/0008), stored
 * only as sha256 hashes (see TokenStore in domain/tokens.ts).
 */
import type { Pool } from "pg";
import type { Grant } from "../../domain/principals";
import type { NewToken, TokenRecord, TokenStore } from "../../domain/tokens";
import { runStatement, sql, type Statement } from "./sql";

interface TokenRow {
  id: string;
  principal: string;
  grants: Grant[];
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
}

function toRecord(r: TokenRow): TokenRecord {
  return {
    id: r.id,
    principal: r.principal,
    grants: r.grants,
    createdAt: r.created_at,
    expiresAt: r.expires_at ?? undefined,
    revokedAt: r.revoked_at ?? undefined,
  };
}

export class PostgresTokenStore implements TokenStore {
  constructor(private readonly pool: Pool) {}

  private async rows<R extends object>(st: Statement, values: unknown[]): Promise<R[]> {
    return (await runStatement<R>(this.pool, st, values)).rows;
  }

  async findByHash(hash: Buffer): Promise<TokenRecord | undefined> {
    const [row] = await this.rows<TokenRow>(sql("token_find"), [hash]);
    return row && toRecord(row);
  }

  async create(t: NewToken): Promise<TokenRecord> {
    const values = [t.id, t.hash, t.principal, JSON.stringify(t.grants), t.expiresAt ?? null];
    const [row] = await this.rows<TokenRow>(sql("token_create"), values);
    return toRecord(row!);
  }

  async list(afterId: string, limit: number): Promise<TokenRecord[]> {
    return (await this.rows<TokenRow>(sql("token_list"), [afterId, limit])).map(toRecord);
  }

  async revoke(id: string): Promise<boolean> {
    return (await this.rows(sql("token_revoke"), [id])).length > 0;
  }

  async bootstrap(hashes: { configured: Buffer } | { generated: Buffer }, grants: readonly Grant[]): Promise<boolean> {
    const configured = "configured" in hashes ? hashes.configured : null;
    const generated = "generated" in hashes ? hashes.generated : null;
    const values = [configured, generated, JSON.stringify(grants)];
    // Replicas starting together are arbitrated by the statement itself (token_bootstrap.sql).
    const rows = await this.rows<{ inserted: boolean; updated: boolean }>(sql("token_bootstrap"), values);
    return rows[0]!.inserted || rows[0]!.updated;
  }
}
