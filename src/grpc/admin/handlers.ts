/**
 * gRPC handlers for agentstate.v1.AdminService: API tokens and the audit
 * trail. Who may call them is the access table's (grpc/auth/access.ts); the
 * handlers decode, call TokenAdmin or the AuditLog, and encode.
 */
import type { TokenAdmin } from "../../auth/TokenAdmin";
import type { AuditLog } from "../../domain/audit";
import type { AdminServiceServer } from "../../gen/agentstate/v1/admin";
import type { CallEnv } from "../pipeline/context";
import { unary } from "../pipeline/unary";
import {
  changeToPb,
  decodeCreateToken,
  decodeListChanges,
  decodeListTokens,
  decodeRevokeToken,
  encodeChangesPageToken,
  tokenToPb,
} from "./codec";

export function adminHandlers(
  admin: TokenAdmin,
  audit: AuditLog,
  env: CallEnv,
): Pick<AdminServiceServer, "createToken" | "listTokens" | "revokeToken" | "listChanges"> {
  return {
    createToken: unary("CreateToken", env, async (req, ctx) => {
      const q = decodeCreateToken(req);
      const { record, text } = await admin.create(q.principal, q.grants, q.ttlMs);
      ctx.log.info("token created", { id: record.id, for: q.principal, by: ctx.principal?.name });
      return { id: record.id, token: text, expireTime: record.expiresAt };
    }),
    listTokens: unary("ListTokens", env, async (req) => {
      const q = decodeListTokens(req);
      const page = await admin.list(q.afterId, q.limit + 1);
      const tokens = page.slice(0, q.limit);
      return {
        tokens: tokens.map(tokenToPb),
        nextPageToken: page.length > q.limit ? tokens[tokens.length - 1]!.id : "",
      };
    }),
    revokeToken: unary("RevokeToken", env, async (req, ctx) => {
      const q = decodeRevokeToken(req);
      await admin.revoke(q.id);
      ctx.log.info("token revoked", { id: q.id, by: ctx.principal?.name });
      return { revoked: true };
    }),
    listChanges: unary("ListChanges", env, async (req) => {
      const page = await audit.changes(decodeListChanges(req));
      return { changes: page.changes.map(changeToPb), nextPageToken: encodeChangesPageToken(page.next) };
    }),
  };
}
