/**
 * Start-up failures that name their cause: which dependency, where (host and
 * port, never credentials), and why, in words an operator can act on. The
 * server logs them at error level and exits; it never starts half-connected
 * to its truth. (Redis is not fatal at start unless AGENTSTATE_CACHE_REQUIRED=1:
 * the cache and Redlock log the same description and degrade as the contract
 * says; a refused password is logged at error level, since it will not fix itself.)
 */

/** A dependency the server needs could not be reached or refused the server. */
export class DependencyUnreachableError extends Error {
  override name = "DependencyUnreachableError";
  constructor(
    /** "postgres", "embedded postgres", "redis (cache)", ... */
    readonly dependency: string,
    /** host:port (or a data directory), never a URL with credentials. */
    readonly target: string,
    /** Why, in words: "connection refused", "name not resolved", ... */
    readonly reason: string,
  ) {
    super(`${dependency} at ${target}: ${reason}`);
  }
}

/** host:port of a connection URL (postgres://, redis://, rediss://), without user, password or path. */
export function urlTarget(url: string, defaultPort: number): string {
  try {
    const u = new URL(url);
    const host = u.hostname || "localhost";
    return `${host}:${u.port || defaultPort}`;
  } catch {
    return "(unparseable URL)";
  }
}

const ERRNO_REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused (nothing listens there)",
  ENOTFOUND: "name not resolved",
  EAI_AGAIN: "name not resolved (DNS did not answer)",
  ETIMEDOUT: "timed out connecting",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNRESET: "connection reset by the server",
  EPROTO: "TLS handshake failed",
};

const SQLSTATE_REASONS: Record<string, string> = {
  "28P01": "authentication failed (wrong password)",
  "28000": "authentication failed (the server refused this user)",
  "3D000": "database does not exist",
  "53300": "too many connections",
  "57P03": "the server is starting up or shutting down",
};

/** Redis replies (ioredis ReplyError messages start with the error code) that mean the credentials are wrong. */
const REDIS_AUTH_REASONS: [RegExp, string][] = [
  [/^WRONGPASS\b/, "authentication failed (wrong user name or password)"],
  [/^NOAUTH\b/, "authentication required (the server has a password; the URL gives none)"],
  [
    /^ERR AUTH .*no password is set|^ERR .*AUTH.*without any password/i,
    "authentication failed (the server has no password set)",
  ],
  [/^NOPERM\b/, "authentication failed (the user lacks a permission the server needs)"],
];

/** True when `err` says the dependency refused the credentials (Postgres or Redis), not that it is unreachable. */
export function isAuthFailure(err: unknown): boolean {
  const e = (err ?? {}) as { code?: unknown; message?: unknown };
  if (e.code === "28P01" || e.code === "28000") return true;
  const message = typeof e.message === "string" ? e.message : "";
  return REDIS_AUTH_REASONS.some(([re]) => re.test(message));
}

/** A driver error as a reason phrase: network, DNS, timeout, TLS or authentication, else the driver's message. */
export function connectFailureReason(err: unknown): string {
  const e = (err ?? {}) as { code?: unknown; message?: unknown; errors?: unknown };
  // Node reports a refused dual-stack connect as an AggregateError of attempts.
  if (Array.isArray(e.errors) && e.errors.length > 0 && e.code === undefined) return connectFailureReason(e.errors[0]);
  const code = typeof e.code === "string" ? e.code : undefined;
  const message = typeof e.message === "string" ? e.message : String(err);
  if (code !== undefined && ERRNO_REASONS[code]) return ERRNO_REASONS[code];
  if (code !== undefined && SQLSTATE_REASONS[code]) return `${SQLSTATE_REASONS[code]}: ${message}`;
  if (code !== undefined && /CERT|TLS|SSL/.test(code)) return `TLS: ${message}`;
  // The server's own words after the phrase: they name no secret (Redis never echoes the password).
  for (const [re, reason] of REDIS_AUTH_REASONS) if (re.test(message)) return `${reason}: ${message}`;
  if (/does not support SSL/i.test(message)) return "TLS: the server does not support TLS connections";
  if (/SSL|TLS|certificate/i.test(message)) return `TLS: ${message}`;
  if (/timeout|timed out/i.test(message)) return "timed out connecting (nothing answered)";
  return message;
}
