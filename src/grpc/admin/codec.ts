/**
 * AdminService requests to domain values (and tokens back to messages).
 * Grants are checked by parseGrants (domain/principals.ts), which names the
 * offending field.
 */
import { parseGrants, type Grant, type Role } from "../../domain/principals";
import type { TokenRecord } from "../../domain/tokens";
import { validateDurationMs, validateShortString } from "../../domain/validate";
import { InvalidArgumentError } from "../../errors/errors";
import {
  Role as PbRole,
  type CreateTokenRequest,
  type Grant as PbGrant,
  type ListTokensRequest,
  type RevokeTokenRequest,
  type TokenInfo,
} from "../../gen/agentstate/v1/admin";

const ROLE_OF: Partial<Record<PbRole, Role>> = {
  [PbRole.ROLE_READ]: "read",
  [PbRole.ROLE_WRITE]: "write",
  [PbRole.ROLE_LOCK]: "lock",
  [PbRole.ROLE_ADMIN]: "admin",
};
const PB_ROLE: Record<Role, PbRole> = {
  read: PbRole.ROLE_READ,
  write: PbRole.ROLE_WRITE,
  lock: PbRole.ROLE_LOCK,
  admin: PbRole.ROLE_ADMIN,
};

export const MAX_PRINCIPAL_BYTES = 128;
export const LIST_TOKENS_MAX = 1000;

/** A grant as sent, before validation (an unknown role stays unknown, for parseGrants to name). */
export function grantFromPb(g: PbGrant): { namespace: string; prefix: string; roles: string[] } {
  return { namespace: g.namespace, prefix: g.prefix, roles: g.roles.map((r) => ROLE_OF[r] ?? `role ${r}`) };
}

export function grantToPb(g: Grant): PbGrant {
  return { namespace: g.namespace, prefix: g.prefix, roles: g.roles.map((r) => PB_ROLE[r]) };
}

export function decodeCreateToken(r: CreateTokenRequest) {
  const principal = validateShortString("principal", r.principal, MAX_PRINCIPAL_BYTES);
  if (principal === "") throw new InvalidArgumentError("principal", "is required");
  if (r.grants.length === 0) throw new InvalidArgumentError("grants", "at least one grant is required");
  const grants = parseGrants(r.grants.map(grantFromPb), "grants");
  const ttlMs =
    r.ttl === undefined
      ? undefined
      : validateDurationMs("ttl", r.ttl, { maxSeconds: 100 * 365 * 24 * 3600, allowZero: false });
  return { principal, grants, ttlMs };
}

export function decodeListTokens(r: ListTokensRequest) {
  if (r.limit < 0 || r.limit > LIST_TOKENS_MAX) {
    throw new InvalidArgumentError("limit", `must be between 0 and ${LIST_TOKENS_MAX}`);
  }
  return { limit: r.limit === 0 ? 100 : r.limit, afterId: validateShortString("page_token", r.pageToken, 64) };
}

export function decodeRevokeToken(r: RevokeTokenRequest) {
  if (r.id === "") throw new InvalidArgumentError("id", "is required");
  return { id: validateShortString("id", r.id, 64) };
}

export function tokenToPb(t: TokenRecord): TokenInfo {
  return {
    id: t.id,
    principal: t.principal,
    grants: t.grants.map(grantToPb),
    createTime: t.createdAt,
    expireTime: t.expiresAt,
    revokeTime: t.revokedAt,
  };
}
