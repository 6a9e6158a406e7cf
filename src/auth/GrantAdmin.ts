/**
 * Giving, taking and listing the grants stored for named principals
 * (AdminService GrantRoles, RevokeGrant, ListGrants; domain/grants.ts says
 * whom they apply to). Whether the caller may do it is decided before (the
 * access table: admin over the grant's scope); this enforces the per-principal
 * limit and says when there was nothing to revoke.
 */
import { LimitExceededError, NotFoundError } from "../errors/errors";
import type { GrantCursor, GrantStore, PrincipalGrant } from "../domain/grants";
import { GRANT_LIMITS, type Grant, type Role } from "../domain/principals";

export class GrantAdmin {
  constructor(private readonly grants: GrantStore) {}

  async add(principal: string, grant: Grant): Promise<PrincipalGrant> {
    const made = await this.grants.add(principal, grant, GRANT_LIMITS.maxGrants);
    if (made === undefined) {
      throw new LimitExceededError(
        "grants per principal",
        `principal ${JSON.stringify(principal)} already holds ${GRANT_LIMITS.maxGrants} stored grants, ` +
          "the limit (grants per principal): add roles to one of them or revoke one",
      );
    }
    return made;
  }

  /** What is left of the grant (undefined: it is gone); NOT_FOUND when there was no such grant. */
  async revoke(
    principal: string,
    namespace: string,
    prefix: string,
    roles: readonly Role[],
  ): Promise<PrincipalGrant | undefined> {
    const left = await this.grants.revoke(principal, namespace, prefix, roles);
    if (left === false) {
      throw new NotFoundError(
        `principal ${JSON.stringify(principal)} holds no stored grant on namespace ${JSON.stringify(namespace)}` +
          (prefix === "" ? "" : ` with prefix ${JSON.stringify(prefix.slice(0, 64))}`),
      );
    }
    if (left.roles === undefined) return undefined;
    return { principal, grant: { namespace, prefix, roles: left.roles }, updatedAt: left.updatedAt! };
  }

  list(principal: string, after: GrantCursor | undefined, limit: number): Promise<PrincipalGrant[]> {
    return this.grants.list(principal, after, limit);
  }
}
