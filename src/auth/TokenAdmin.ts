/**
 * Making, listing and revoking API tokens (AdminService), and the bootstrap
 * admin token. Whether the caller may do it is decided before (the access
 * table: admin over every scope the new grants reach); this makes the token
 * text, keeps only its hash, and shows the text once.
 */
import { NotFoundError } from "../errors/errors";
import type { Grant } from "../domain/principals";
import type { TokenRecord, TokenStore } from "../domain/tokens";
import { hashToken, newToken } from "./tokens";

/** The bootstrap principal's grants: admin (so every role) on every namespace. */
export const BOOTSTRAP_GRANTS: readonly Grant[] = Object.freeze([
  Object.freeze({ namespace: "*", prefix: "", roles: Object.freeze(["admin" as const]) }),
]);

export class TokenAdmin {
  constructor(private readonly tokens: TokenStore) {}

  async create(
    principal: string,
    grants: readonly Grant[],
    ttlMs: number | undefined,
  ): Promise<{ record: TokenRecord; text: string }> {
    const t = newToken();
    const expiresAt = ttlMs === undefined ? undefined : new Date(Date.now() + ttlMs);
    const record = await this.tokens.create({ id: t.id, hash: t.hash, principal, grants, expiresAt });
    return { record, text: t.text };
  }

  list(afterId: string, limit: number): Promise<TokenRecord[]> {
    return this.tokens.list(afterId, limit);
  }

  async revoke(id: string): Promise<void> {
    if (!(await this.tokens.revoke(id))) throw new NotFoundError(`no token with id ${JSON.stringify(id.slice(0, 64))}`);
  }

  /**
   * The bootstrap admin (token id "bootstrap", principal "bootstrap-admin"):
   * `configured` (AGENTSTATE_BOOTSTRAP_TOKEN) is stored, replacing an older
   * one; without it, a token is made only when none exists at all (a first
   * start) and its text returned, to be shown once.
   */
  async bootstrap(configured: string | undefined): Promise<string | undefined> {
    if (configured !== undefined) {
      await this.tokens.bootstrap({ configured: hashToken(configured) }, BOOTSTRAP_GRANTS);
      return undefined;
    }
    const t = newToken();
    return (await this.tokens.bootstrap({ generated: t.hash }, BOOTSTRAP_GRANTS)) ? t.text : undefined;
  }
}
