/**
 * gRPC handlers for agentstate.v1.LockService: decode and validate
 * (codec.ts), call the lock service (which waits, fences and releases for
 * callers that went away), (errors mapped by the call pipeline), stamp the
 * revision. A lock wait is a long wait: it follows `longWaitSignal`.
 */
import type { Limits } from "../../domain/limits";
import type { LockService } from "../../domain/locks";
import type { LockServiceServer } from "../../gen/agentstate/v1/lock";
import { decodeLock, decodeRenewLock, decodeUnlock } from "./codec";
import type { CallEnv } from "../pipeline/context";
import { unary } from "../pipeline/unary";

export interface LockMetrics {
  lockWait(outcome: string, seconds: number): void;
}

export function lockHandlers(
  locks: LockService,
  limits: Limits,
  env: CallEnv,
  metrics?: LockMetrics,
): LockServiceServer {
  return {
    lock: unary("Lock", env, async (req, ctx) => {
      const q = decodeLock(req, limits);
      const started = Date.now();
      const r = await locks.acquire({
        ...q,
        deadline: ctx.deadline,
        // A lock wait is a long wait: shutdown ends it with UNAVAILABLE.
        signal: ctx.longWaitSignal,
      });
      metrics?.lockWait(r.acquired ? "acquired" : "not_acquired", (Date.now() - started) / 1000);
      if (!r.acquired) {
        return {
          header: { revision: r.revision },
          acquired: false,
          lockId: "",
          fencingToken: 0,
          expireTime: undefined,
          holderOwner: r.holderOwner ?? "",
        };
      }
      return {
        header: { revision: r.revision },
        acquired: true,
        lockId: r.lockId,
        fencingToken: r.token,
        expireTime: r.expireTime,
        holderOwner: "",
      };
    }),
    unlock: unary("Unlock", env, async (req) => {
      const q = decodeUnlock(req, limits);
      const revision = await locks.release(q.namespace, q.name, q.lockId);
      return { header: { revision }, released: true };
    }),
    renewLock: unary("RenewLock", env, async (req) => {
      const q = decodeRenewLock(req, limits);
      const r = await locks.renew(q.namespace, q.name, q.lockId, q.ttlMs);
      return { header: { revision: r.revision }, fencingToken: r.token, expireTime: r.expireTime };
    }),
  };
}
