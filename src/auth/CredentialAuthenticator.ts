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
 *
 * A principal proven by a JWT or a client certificate also holds the grants
 * stored for its name (domain/grants.ts; GrantRoles): its effective grants are
 * the credential's and the stored ones together. They are cached per name the
 * same way (forgotten on every replica when a change's NOTIFY arrives, read
 * again after `cacheMs`, or UNLISTENED_CACHE_MS while not listening), and the
 * merged principal is kept per credential principal, so a known certificate or
 * JWT costs two map lookups. API tokens never take stored grants (see
 * domain/grants.ts): their path is unchanged.
 */
import { UnauthenticatedError } from "../errors/errors";
import type { GrantStore } from "../domain/grants";
import { GRANT_LIMITS, type Authenticator, type Credentials, type Grant, type Principal } from "../domain/principals";
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

/** The stored grants of one principal name, as last read. */
interface StoredEntry {
  grants: readonly Grant[];
  recheckAt: number;
}

export interface AuthenticatorParts {
  tokens: TokenStore;
  /** Grants stored for named principals (JWT subjects, certificate principals); unset: none. */
  grants?: GrantStore | undefined;
  jwt: JwtVerifier | undefined;
  certs: CertPrincipals | undefined;
  /** How long a verified token is trusted before it is read again, while revocations are heard. */
  cacheMs: number;
}

export class CredentialAuthenticator implements Authenticator, TokenChangeListener {
  private readonly cache = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<Principal>>();
  private readonly stored = new Map<string, StoredEntry>();
  private readonly storedInFlight = new Map<string, Promise<StoredEntry>>();
  /** A credential principal with its stored grants added, as of one StoredEntry. */
  private readonly merged = new WeakMap<Principal, { entry: StoredEntry; principal: Principal }>();
  private generation = 0;
  private listening = false;

  constructor(private readonly parts: AuthenticatorParts) {}

  authenticate(c: Credentials): Principal | Promise<Principal> {
    const bearer = c.bearer;
    if (bearer === undefined) return this.withStored(this.byCertificate(c));
    const hit = this.cache.get(bearer);
    if (hit !== undefined) {
      const now = Date.now();
      if (now < hit.recheckAt && now < hit.expiresAt) {
        return hit.principal.via === "token" ? hit.principal : this.withStored(hit.principal);
      }
      this.cache.delete(bearer);
    }
    let pending = this.inFlight.get(bearer);
    if (pending === undefined) {
      pending = this.verify(bearer).finally(() => this.inFlight.delete(bearer));
      this.inFlight.set(bearer, pending);
    }
    return pending.then((p) => (p.via === "token" ? p : this.withStored(p)));
  }

  changed(id: string): void {
    this.generation++;
    for (const [k, e] of this.cache) if (e.principal.tokenId === id) this.cache.delete(k);
  }

  grantsChanged(principal: string): void {
    this.generation++;
    this.stored.delete(principal);
    this.storedInFlight.delete(principal); // a read begun before the change: later calls read again
  }

  reset(listening: boolean): void {
    this.generation++;
    this.listening = listening;
    this.cache.clear();
    this.stored.clear();
    this.storedInFlight.clear();
  }

  /** `p` with the grants stored for its name added (itself when there are none). */
  private withStored(p: Principal): Principal | Promise<Principal> {
    if (this.parts.grants === undefined) return p;
    const entry = this.stored.get(p.name);
    if (entry !== undefined && Date.now() < entry.recheckAt) return this.merge(p, entry);
    let pending = this.storedInFlight.get(p.name);
    if (pending === undefined) {
      const name = p.name;
      const read: Promise<StoredEntry> = this.readStored(name).finally(() => {
        if (this.storedInFlight.get(name) === read) this.storedInFlight.delete(name);
      });
      this.storedInFlight.set(name, (pending = read));
    }
    return pending.then((e) => this.merge(p, e));
  }

  private merge(p: Principal, entry: StoredEntry): Principal {
    if (entry.grants.length === 0) return p;
    const known = this.merged.get(p);
    if (known !== undefined && known.entry === entry) return known.principal;
    const principal = Object.freeze({ ...p, grants: Object.freeze([...p.grants, ...entry.grants]) });
    this.merged.set(p, { entry, principal });
    return principal;
  }

  private async readStored(name: string): Promise<StoredEntry> {
    const generation = this.generation;
    const grants = await this.parts.grants!.find(name, GRANT_LIMITS.maxGrants);
    const entry = {
      grants: Object.freeze(grants),
      recheckAt: Date.now() + (this.listening ? this.parts.cacheMs : UNLISTENED_CACHE_MS),
    };
    if (generation === this.generation) {
      if (this.stored.size >= MAX_ENTRIES) this.stored.delete(this.stored.keys().next().value!);
      this.stored.set(name, entry);
    }
    return entry;
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
