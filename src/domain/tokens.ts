/**
 * API tokens as the domain sees them: a record per token (never its text,
 * which only its creator sees, once) and the port of the store that keeps
 * them. Tokens are made and checked in src/auth; they are stored by an
 * adapter (store/postgres/PostgresTokenStore).
 */
import type { Grant } from "./principals";

export interface TokenRecord {
  readonly id: string;
  readonly principal: string;
  readonly grants: readonly Grant[];
  readonly createdAt: Date;
  /** Undefined: never expires. */
  readonly expiresAt: Date | undefined;
  /** Undefined: not revoked. */
  readonly revokedAt: Date | undefined;
}

export interface NewToken {
  readonly id: string;
  /** sha256 of the token's text. */
  readonly hash: Buffer;
  readonly principal: string;
  readonly grants: readonly Grant[];
  readonly expiresAt: Date | undefined;
}

/** Told when tokens or stored grants change on any replica, so caches of verified tokens forget them. */
export interface TokenChangeListener {
  /** Token `id` was revoked or replaced. */
  changed(id: string): void;
  /** The stored grants of `principal` changed (domain/grants.ts). */
  grantsChanged(principal: string): void;
  /**
   * Notifications may have been missed (the listen connection was lost) or
   * flow again: forget everything; while not `listening`, cache briefly only.
   */
  reset(listening: boolean): void;
}

export interface TokenStore {
  findByHash(hash: Buffer): Promise<TokenRecord | undefined>;
  create(t: NewToken): Promise<TokenRecord>;
  /** Tokens in id order after `afterId`, at most `limit`. */
  list(afterId: string, limit: number): Promise<TokenRecord[]>;
  /** False when there is no such token. */
  revoke(id: string): Promise<boolean>;
  /**
   * The bootstrap admin token: `configured` (a hash) is stored, replacing an
   * older one; or else `generated` is stored only if no token exists at all.
   * Resolves true if the store now holds a token it did not hold before.
   */
  bootstrap(hashes: { configured: Buffer } | { generated: Buffer }, grants: readonly Grant[]): Promise<boolean>;
}
