/**
 * PostgresGrantStore: grants held for named principals in `principal_grants`
 * (migrations/0013; see GrantStore in domain/grants.ts). Every change NOTIFYs
 * `agentstate_auth` with 'principal:' || name (PgTokenChanges tells the
 * caches of every replica).
 */
import type { Pool } from "pg";
import type { GrantCursor, GrantStore, PrincipalGrant } from "../../domain/grants";
import type { Grant, Role } from "../../domain/principals";
import { runStatement, sql, type Statement } from "./sql";

interface GrantRow {
  principal: string;
  namespace: string;
  prefix: string;
  roles: Role[];
  updated_at: Date;
}

function toGrant(r: { namespace: string; prefix: string; roles: Role[] }): Grant {
  return Object.freeze({ namespace: r.namespace, prefix: r.prefix, roles: Object.freeze([...r.roles]) });
}

function toPrincipalGrant(r: GrantRow): PrincipalGrant {
  return { principal: r.principal, grant: toGrant(r), updatedAt: r.updated_at };
}

export class PostgresGrantStore implements GrantStore {
  constructor(private readonly pool: Pool) {}

  private async rows<R extends object>(st: Statement, values: unknown[]): Promise<R[]> {
    return (await runStatement<R>(this.pool, st, values)).rows;
  }

  async find(principal: string, limit: number): Promise<Grant[]> {
    return (await this.rows<GrantRow>(sql("grant_find"), [principal, limit])).map(toGrant);
  }

  async add(principal: string, grant: Grant, maxGrants: number): Promise<PrincipalGrant | undefined> {
    const values = [principal, grant.namespace, grant.prefix, [...grant.roles], maxGrants];
    const [row] = await this.rows<GrantRow>(sql("grant_add"), values);
    return row && toPrincipalGrant(row);
  }

  async revoke(
    principal: string,
    namespace: string,
    prefix: string,
    roles: readonly Role[],
  ): Promise<false | { roles: readonly Role[] | undefined; updatedAt: Date | undefined }> {
    const [row] = await this.rows<{ roles: Role[] | null; updated_at: Date | null }>(sql("grant_revoke"), [
      principal,
      namespace,
      prefix,
      [...roles],
    ]);
    if (row === undefined) return false;
    return { roles: row.roles ?? undefined, updatedAt: row.updated_at ?? undefined };
  }

  async list(principal: string, after: GrantCursor | undefined, limit: number): Promise<PrincipalGrant[]> {
    const values = [principal, after?.principal ?? "", after?.namespace ?? "", after?.prefix ?? "", limit];
    return (await this.rows<GrantRow>(sql("grant_list"), values)).map(toPrincipalGrant);
  }
}
