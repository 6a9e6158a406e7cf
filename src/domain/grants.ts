/**
 * Grants held in the store for named principals (AdminService GrantRoles,
 * RevokeGrant, ListGrants), given and taken at run time. A principal proven
 * by a client certificate or a JWT holds them on top of its credential's own
 * grants (its effective grants are the union); an API token never does: its
 * grants are fixed when it is made, and an admin of one namespace may name a
 * token's principal freely, so a name alone must not bring a token more.
 * Changes reach every replica through the token-change notifications
 * (TokenChangeListener.grantsChanged).
 */
import type { Grant, Role } from "./principals";

/** One stored grant and whom it is for. */
export interface PrincipalGrant {
  readonly principal: string;
  readonly grant: Grant;
  readonly updatedAt: Date;
}

/** Where a grants list resumes: after this (principal, namespace, prefix). */
export interface GrantCursor {
  readonly principal: string;
  readonly namespace: string;
  readonly prefix: string;
}

export interface GrantStore {
  /** The stored grants of `principal` (at most `limit`). */
  find(principal: string, limit: number): Promise<Grant[]>;
  /**
   * Adds the grant's roles to `principal`'s grant on the same namespace
   * pattern and prefix (made if new). Undefined: the principal already
   * holds `maxGrants` grants and this would be a new one.
   */
  add(principal: string, grant: Grant, maxGrants: number): Promise<PrincipalGrant | undefined>;
  /**
   * Takes `roles` (every role when empty) from that grant, removing it when
   * none is left. False: there was no such grant; undefined roles: it is gone.
   */
  revoke(
    principal: string,
    namespace: string,
    prefix: string,
    roles: readonly Role[],
  ): Promise<false | { roles: readonly Role[] | undefined; updatedAt: Date | undefined }>;
  /** Grants in (principal, namespace, prefix) order after `after`, of `principal` only unless "". */
  list(principal: string, after: GrantCursor | undefined, limit: number): Promise<PrincipalGrant[]>;
}
