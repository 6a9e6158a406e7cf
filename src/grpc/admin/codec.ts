/**
 * AdminService requests to domain values (and tokens back to messages).
 * Grants are checked by parseGrants (domain/principals.ts), which names the
 * offending field.
 */
import type { ChangeOp, ChangePosition, ChangeRecord, ChangeQuery } from "../../domain/audit";
import { parseGrants, type Grant, type Role } from "../../domain/principals";
import type { GrantCursor, PrincipalGrant } from "../../domain/grants";
import type { TokenRecord } from "../../domain/tokens";
import { validateDurationMs, validateNamespace, validateShortString } from "../../domain/validate";
import { InvalidArgumentError } from "../../errors/errors";
import {
  ChangeOp as PbChangeOp,
  Role as PbRole,
  type Change,
  type ListChangesRequest,
  type CreateTokenRequest,
  type Grant as PbGrant,
  type GrantRolesRequest,
  type ListGrantsRequest,
  type ListTokensRequest,
  type PrincipalGrant as PbPrincipalGrant,
  type RevokeGrantRequest,
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
/** Most changes in one ListChanges page (`limit`), and the page size when it is 0. */
export const LIST_CHANGES_MAX = 1000;
export const LIST_CHANGES_DEFAULT = 100;
/** Longest ListChanges `key_prefix`, in bytes. */
export const MAX_CHANGES_PREFIX_BYTES = 1024;

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

/** A ListChanges page token: "c1:<µs since the epoch>:<revision>", base64url (opaque to callers). */
export function encodeChangesPageToken(p: ChangePosition | undefined): string {
  return p === undefined ? "" : Buffer.from(`c1:${p.atMicros}:${p.revision}`).toString("base64url");
}

function decodeChangesPageToken(t: string): ChangePosition | undefined {
  if (t === "") return undefined;
  const m = t.length <= 64 ? /^c1:(\d{1,18}):(\d{1,18})$/.exec(Buffer.from(t, "base64url").toString("latin1")) : null;
  if (m === null) throw new InvalidArgumentError("page_token", "is not a next_page_token of ListChanges");
  return { atMicros: BigInt(m[1]!), revision: Number(m[2]!) };
}

export function decodeListChanges(r: ListChangesRequest): ChangeQuery {
  const namespace = validateNamespace("namespace", r.namespace);
  if (r.limit < 0 || r.limit > LIST_CHANGES_MAX) {
    throw new InvalidArgumentError("limit", `must be between 0 and ${LIST_CHANGES_MAX}`);
  }
  const principal = validateShortString("principal", r.principal, MAX_PRINCIPAL_BYTES);
  const since = r.sinceTime;
  const until = r.untilTime;
  if (since !== undefined && until !== undefined && since.getTime() > until.getTime()) {
    throw new InvalidArgumentError("until_time", "must not be before since_time");
  }
  return {
    namespace,
    since,
    until,
    principal: principal === "" ? undefined : principal,
    prefix: validateShortString("key_prefix", r.keyPrefix, MAX_CHANGES_PREFIX_BYTES),
    limit: r.limit === 0 ? LIST_CHANGES_DEFAULT : r.limit,
    after: decodeChangesPageToken(r.pageToken),
  };
}

const PB_CHANGE_OP: Record<ChangeOp, PbChangeOp> = {
  put: PbChangeOp.CHANGE_OP_PUT,
  delete: PbChangeOp.CHANGE_OP_DELETE,
  expire: PbChangeOp.CHANGE_OP_EXPIRE,
  append: PbChangeOp.CHANGE_OP_APPEND,
  checkpoint_put: PbChangeOp.CHANGE_OP_CHECKPOINT_PUT,
  checkpoint_writes: PbChangeOp.CHANGE_OP_CHECKPOINT_WRITES,
  thread_delete: PbChangeOp.CHANGE_OP_THREAD_DELETE,
  thread_copy: PbChangeOp.CHANGE_OP_THREAD_COPY,
  checkpoint_prune: PbChangeOp.CHANGE_OP_CHECKPOINT_PRUNE,
  checkpoint_delete_runs: PbChangeOp.CHANGE_OP_CHECKPOINT_DELETE_RUNS,
  item_put: PbChangeOp.CHANGE_OP_ITEM_PUT,
  item_delete: PbChangeOp.CHANGE_OP_ITEM_DELETE,
};

export function changeToPb(c: ChangeRecord): Change {
  return {
    op: PB_CHANGE_OP[c.op],
    key: c.key ?? "",
    stream: c.stream ?? "",
    target: c.target ?? "",
    revision: c.revision,
    version: c.version,
    principal: c.principal ?? "",
    requestId: c.requestId ?? "",
    time: c.time,
    principalRecorded: c.principal !== undefined,
  };
}

// --- Stored grants (GrantRoles, RevokeGrant, ListGrants) ---------------------

export const LIST_GRANTS_MAX = 1000;

function decodePrincipal(value: string): string {
  const principal = validateShortString("principal", value, MAX_PRINCIPAL_BYTES);
  if (principal === "") throw new InvalidArgumentError("principal", "is required");
  return principal;
}

/**
 * One grant, checked as parseGrants checks a list, its error naming the
 * request's own field (`grant.namespace`; with `field` "": `namespace`).
 */
function oneGrant(raw: { namespace: string; prefix: string; roles: string[] }, field: string): Grant {
  try {
    return parseGrants([raw], "g")[0]!;
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    const sub = err.field.replace(/^g\[0\]\.?/, "");
    throw new InvalidArgumentError(field === "" ? sub : `${field}.${sub}`, err.message.slice(err.field.length + 2));
  }
}

export function decodeGrantRoles(r: GrantRolesRequest) {
  const principal = decodePrincipal(r.principal);
  if (r.grant === undefined) throw new InvalidArgumentError("grant", "is required");
  return { principal, grant: oneGrant(grantFromPb(r.grant), "grant") };
}

export function decodeRevokeGrant(r: RevokeGrantRequest) {
  const principal = decodePrincipal(r.principal);
  // The same checks as a grant's (an empty role list: every role).
  const roles = r.roles.map((x) => ROLE_OF[x] ?? `role ${x}`);
  const grant = oneGrant(
    { namespace: r.namespace, prefix: r.prefix, roles: roles.length === 0 ? ["read"] : roles },
    "",
  );
  return { principal, namespace: grant.namespace, prefix: grant.prefix, roles: roles.length === 0 ? [] : grant.roles };
}

/** A page token: the last grant's (principal, namespace, prefix), as base64url JSON. */
export function grantCursorToken(g: PrincipalGrant): string {
  return Buffer.from(JSON.stringify([g.principal, g.grant.namespace, g.grant.prefix])).toString("base64url");
}

export function decodeListGrants(r: ListGrantsRequest) {
  const principal = r.principal === "" ? "" : decodePrincipal(r.principal);
  if (r.limit < 0 || r.limit > LIST_GRANTS_MAX) {
    throw new InvalidArgumentError("limit", `must be between 0 and ${LIST_GRANTS_MAX}`);
  }
  let after: GrantCursor | undefined;
  if (r.pageToken !== "") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(validateShortString("page_token", r.pageToken, 4096), "base64url").toString());
    } catch {
      parsed = undefined;
    }
    if (!Array.isArray(parsed) || parsed.length !== 3 || !parsed.every((x) => typeof x === "string")) {
      throw new InvalidArgumentError("page_token", "is not a page token of ListGrants");
    }
    const [p, namespace, prefix] = parsed as [string, string, string];
    after = { principal: p, namespace, prefix };
  }
  return { principal, limit: r.limit === 0 ? 100 : r.limit, after };
}

export function principalGrantToPb(g: PrincipalGrant): PbPrincipalGrant {
  return { principal: g.principal, grant: grantToPb(g.grant), updateTime: g.updatedAt };
}
