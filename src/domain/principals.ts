/**
 * Principals and grants: who a call acts for and what it may do (guarantee 8).
 * The domain knows a Principal and its grants, never how it was proven (a
 * token, a JWT, a client certificate: src/auth) nor the transport.
 *
 * Terminology:
 * - principal: a named caller ("ci-bot", a JWT's `sub`, a certificate's CN).
 * - role: read (Get, List, ReadStream, Subscribe and every later read),
 *   write (CompareAndSet, Delete, AppendEvent), lock (Lock, Unlock,
 *   RenewLock), admin (tokens; admin also holds every other role in its scope).
 * - grant: roles on a namespace pattern (a namespace, or a prefix ending in
 *   `*`; `*` alone is every namespace) and optionally a key prefix, which
 *   bounds the keys, stream names and lock names the roles reach.
 * - scope: what one call touches: a namespace and a key (one key, stream or
 *   lock name) or a prefix (List, Subscribe by stream prefix). A prefix is
 *   covered only by a grant whose own prefix it starts with.
 */
import { InvalidArgumentError } from "../errors/errors";

export const ROLES = ["read", "write", "lock", "admin"] as const;
export type Role = (typeof ROLES)[number];

export interface Grant {
  /** A namespace, or a pattern ending in `*` (`*` alone: every namespace). */
  readonly namespace: string;
  /** Keys, stream names and lock names must start with this ("" : all). */
  readonly prefix: string;
  readonly roles: readonly Role[];
}

export interface Principal {
  readonly name: string;
  readonly grants: readonly Grant[];
  /** How it was proven (for logs and audit): "token", "jwt", "cert". */
  readonly via: string;
  /** The API token's id when `via` is "token". */
  readonly tokenId?: string;
}

/** What one call touches. `key` and `prefix` are exclusive; neither: the namespace as a whole. */
export interface Scope {
  readonly namespace: string;
  readonly key?: string;
  readonly prefix?: string;
}

/** Limits of a grant list, so a token or a JWT claim cannot make the check expensive. */
export const GRANT_LIMITS = Object.freeze({ maxGrants: 64, maxPatternBytes: 64, maxPrefixBytes: 1024 });

const PATTERN = /^(\*|[a-z0-9][a-z0-9._-]{0,62}\*?)$/;

function patternCovers(pattern: string, namespace: string): boolean {
  if (pattern.endsWith("*")) return namespace.startsWith(pattern.slice(0, -1));
  return pattern === namespace;
}

function grantCovers(g: Grant, role: Role, s: Scope): boolean {
  if (!g.roles.includes(role) && !g.roles.includes("admin")) return false;
  if (!patternCovers(g.namespace, s.namespace)) return false;
  if (g.prefix === "") return true;
  if (s.key !== undefined) return s.key.startsWith(g.prefix);
  if (s.prefix !== undefined) return s.prefix.startsWith(g.prefix);
  return false; // the namespace as a whole is more than a prefix of it
}

/** Whether `p` holds `role` on every scope in `scopes`. */
export function allows(p: Principal, role: Role, scopes: readonly Scope[]): boolean {
  return scopes.every((s) => p.grants.some((g) => grantCovers(g, role, s)));
}

/**
 * Whether `p` may hand out `g` (admin over everything `g` reaches): a grant's
 * namespace pattern is checked as a namespace, which works because `*` can
 * only end a pattern and never appears in a namespace.
 */
export function mayGrant(p: Principal, g: Grant): boolean {
  return allows(p, "admin", [
    g.prefix === "" ? { namespace: g.namespace } : { namespace: g.namespace, prefix: g.prefix },
  ]);
}

/**
 * Validates grants from outside (an admin request, a JWT claim, the
 * certificate file): `field` names where they came from in the error.
 */
export function parseGrants(raw: unknown, field: string): Grant[] {
  if (!Array.isArray(raw)) throw new InvalidArgumentError(field, "must be a list of grants");
  if (raw.length > GRANT_LIMITS.maxGrants) {
    throw new InvalidArgumentError(field, `at most ${GRANT_LIMITS.maxGrants} grants`);
  }
  return raw.map((g: unknown, i) => {
    const at = `${field}[${i}]`;
    if (typeof g !== "object" || g === null) throw new InvalidArgumentError(at, "must be an object");
    const { namespace, prefix = "", roles } = g as Record<string, unknown>;
    if (typeof namespace !== "string" || !PATTERN.test(namespace)) {
      throw new InvalidArgumentError(
        `${at}.namespace`,
        "must be a namespace, a namespace prefix ending in *, or * (at most 64 characters of a-z 0-9 . _ -)",
      );
    }
    if (typeof prefix !== "string" || Buffer.byteLength(prefix) > GRANT_LIMITS.maxPrefixBytes) {
      throw new InvalidArgumentError(
        `${at}.prefix`,
        `must be a string of at most ${GRANT_LIMITS.maxPrefixBytes} bytes`,
      );
    }
    if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => ROLES.includes(r as Role))) {
      throw new InvalidArgumentError(`${at}.roles`, `must list one or more of ${ROLES.join(", ")}`);
    }
    return Object.freeze({ namespace, prefix, roles: Object.freeze([...new Set(roles as Role[])]) });
  });
}

/** A client certificate's identity, as the TLS handshake verified it. */
export interface PeerIdentity {
  /** The subject's common name. */
  readonly cn: string | undefined;
  /** The URIs among its subject alternative names (SPIFFE ids and the like). */
  readonly uris: readonly string[];
}

/** What a call presents: a bearer credential (token or JWT) and, under mTLS, a client certificate. */
export interface Credentials {
  /** The text after `Bearer ` in the `authorization` metadata; undefined when absent. */
  readonly bearer: string | undefined;
  /** The verified client certificate, read only when there is no bearer credential. */
  peer(): PeerIdentity | undefined;
}

/**
 * Turns credentials into a principal, or throws UnauthenticatedError. Returns
 * synchronously when it can (a cached token), so a call that is already known
 * costs no promise.
 */
export interface Authenticator {
  authenticate(c: Credentials): Principal | Promise<Principal>;
}
