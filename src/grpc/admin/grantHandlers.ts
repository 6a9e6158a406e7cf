/**
 * gRPC handlers for AdminService's stored grants (GrantRoles, RevokeGrant,
 * ListGrants; see domain/grants.ts). Who may call them is the access table's
 * (grpc/auth/access.ts); the handlers decode, call GrantAdmin, and encode.
 */
import type { GrantAdmin } from "../../auth/GrantAdmin";
import type { AdminServiceServer } from "../../gen/agentstate/v1/admin";
import type { CallEnv } from "../pipeline/context";
import { unary } from "../pipeline/unary";
import { decodeGrantRoles, decodeListGrants, decodeRevokeGrant, grantCursorToken, principalGrantToPb } from "./codec";

export function grantHandlers(
  grants: GrantAdmin,
  env: CallEnv,
): Pick<AdminServiceServer, "grantRoles" | "revokeGrant" | "listGrants"> {
  return {
    grantRoles: unary("GrantRoles", env, async (req, ctx) => {
      const q = decodeGrantRoles(req);
      const g = await grants.add(q.principal, q.grant);
      ctx.log.info("roles granted", {
        for: q.principal,
        namespace: q.grant.namespace,
        roles: q.grant.roles.join(","),
        by: ctx.principal?.name,
      });
      return { grant: principalGrantToPb(g) };
    }),
    revokeGrant: unary("RevokeGrant", env, async (req, ctx) => {
      const q = decodeRevokeGrant(req);
      const left = await grants.revoke(q.principal, q.namespace, q.prefix, q.roles);
      ctx.log.info("grant revoked", {
        for: q.principal,
        namespace: q.namespace,
        roles: q.roles.length === 0 ? "all" : q.roles.join(","),
        by: ctx.principal?.name,
      });
      return { grant: left && principalGrantToPb(left) };
    }),
    listGrants: unary("ListGrants", env, async (req) => {
      const q = decodeListGrants(req);
      const page = await grants.list(q.principal, q.after, q.limit + 1);
      const shown = page.slice(0, q.limit);
      return {
        grants: shown.map(principalGrantToPb),
        nextPageToken: page.length > q.limit ? grantCursorToken(shown[shown.length - 1]!) : "",
      };
    }),
  };
}
