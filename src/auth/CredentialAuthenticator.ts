/**
 * The Authenticator of auth-required servers (domain/principals.ts): a
 * bearer credential is a JWT (verified by JwtVerifier) or an API token
 * (looked up by its hash in the TokenStore); with neither, a client
 * certificate mapped by CertPrincipals. Anything else is UNAUTHENTICATED.
 *
 * Verified credentials are cached, so a call with a known token costs a map
 * lookup and no promise, not a database read (the bench's "within 5 % of
 * auth off"). What keeps the cache honest:
 * - expiry is checked on every hit, against the token's or JWT's own `exp`;
 * - a revoked token is forgotten on every replica when its NOTIFY arrives
 *   (PgTokenChanges calls `changed`), and a lookup that was in flight when
 *   anything was forgotten is not cached (the generation check);
 * - while the notification connection is down (`reset(false)`) tokens are
 *   cached for at most UNLISTENED_CACHE_MS, so a revocation is still seen
 *   within a second;
 * - the cache holds at most MAX_ENTRIES credentials (oldest dropped first).
 */
import { UnauthenticatedError } from "../errors/errors";
import type { Authenticator, Credentials, Principal } from "../domain/principals";
import type { TokenChangeListener, TokenStore } from "../domain/tokens";
import type { CertPrincipals } from "./certPrincipals";
import type { JwtVerifier } from "./JwtVerifier";
import { hashToken, looksLikeJwt, OPAQUE_TOKEN } from "./tokens";

const MAX_ENTRIES = 10_000;
export const UNLISTENED_CACHE_MS = 500;

interface Entry {
  principal: Principal;
  /** When the credential itself expires (ms since the epoch; Infinity: never). */
  expiresAt: number;
  /** When this entry must be checked again with the store. */
  recheckAt: number;
}

export interface AuthenticatorParts {
  tokens: TokenStore;
  jwt: JwtVerifier | undefined;
  certs: CertPrincipals | undefined;
  /** How long a verified token is trusted before it is read again, while revocations are heard. */
  cacheMs: number;
}

export class CredentialAuthenticator implements Authenticator, TokenChangeListener {
  private readonly cache = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<Principal>>();
  private generation = 0;
  private listening = false;

  constructor(private readonly parts: AuthenticatorParts) {}

  authenticate(c: Credentials): Principal | Promise<Principal> {
    const bearer = c.bearer;
    if (bearer === undefined) return this.byCertificate(c);
    const hit = this.cache.get(bearer);
    if (hit !== undefined) {
      const now = Date.now();
      if (now < hit.recheckAt && now < hit.expiresAt) return hit.principal;
      this.cache.delete(bearer);
    }
    let pending = this.inFlight.get(bearer);
    if (pending === undefined) {
      pending = this.verify(bearer).finally(() => this.inFlight.delete(bearer));
      this.inFlight.set(bearer, pending);
    }
    return pending;
  }

  changed(id: string): void {
    this.generation++;
    for (const [k, e] of this.cache) if (e.principal.tokenId === id) this.cache.delete(k);
  }

  reset(listening: boolean): void {
    this.generation++;
    this.listening = listening;
    this.cache.clear();
  }

  private byCertificate(c: Credentials): Principal {
    const peer = this.parts.certs && c.peer();
    if (peer === undefined) throw new UnauthenticatedError("no credentials: send authorization: Bearer <token>");
    const p = this.parts.certs!.principalOf(peer);
    if (p === undefined) throw new UnauthenticatedError("the client certificate is mapped to no principal");
    return p;
  }

  private async verify(bearer: string): Promise<Principal> {
    const generation = this.generation;
    let principal: Principal;
    let expiresAt: number;
    let recheckAt: number;
    if (looksLikeJwt(bearer)) {
      if (!this.parts.jwt) throw new UnauthenticatedError("JWTs are not accepted (AGENTSTATE_JWT_KEYS_FILE is unset)");
      ({ principal, expiresAt } = await this.parts.jwt.verify(bearer));
      recheckAt = Infinity; // a JWT cannot be revoked: only its exp ends it
    } else {
      if (!OPAQUE_TOKEN.test(bearer)) throw new UnauthenticatedError("malformed token");
      const t = await this.parts.tokens.findByHash(hashToken(bearer));
      if (t === undefined) throw new UnauthenticatedError("unknown token");
      if (t.revokedAt !== undefined) throw new UnauthenticatedError("token revoked");
      expiresAt = t.expiresAt?.getTime() ?? Infinity;
      if (Date.now() >= expiresAt) throw new UnauthenticatedError("token expired");
      principal = Object.freeze({ name: t.principal, grants: t.grants, via: "token", tokenId: t.id });
      recheckAt = Date.now() + (this.listening ? this.parts.cacheMs : UNLISTENED_CACHE_MS);
    }
    if (generation === this.generation) {
      if (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(bearer, { principal, expiresAt, recheckAt });
    }
    return principal;
  }
}
