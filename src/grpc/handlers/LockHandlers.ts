/**
 * gRPC handlers for agentstate.v1.LockService: validate, call the lock
 * service (which waits, fences and releases for callers that went away),
 * stamp the revision.
 */
import type { Limits } from "../../domain/limits";
import type { LockService } from "../../domain/locks";
import type { LockServiceServer } from "../../gen/agentstate/v1/lock";
import type { Logger } from "../../log/Logger";
import { decodeLock, decodeRenewLock, decodeUnlock } from "../convert";
import { unaryCall } from "../unaryCall";

export function lockHandlers(
  locks: LockService,
  limits: Limits,
  log: Logger,
  shutdown: AbortSignal,
): LockServiceServer {
  return {
    lock: unaryCall("Lock", log, shutdown, async (req, ctx) => {
      const q = decodeLock(req, limits);
      const r = await locks.acquire({
        ...q,
        deadline: ctx.deadline,
        // A lock wait is a long wait: shutdown ends it with UNAVAILABLE.
        signal: AbortSignal.any([ctx.signal, ctx.shutdown]),
      });
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
    unlock: unaryCall("Unlock", log, shutdown, async (req) => {
      const q = decodeUnlock(req, limits);
      await locks.release(q.namespace, q.name, q.lockId);
      return { header: undefined, released: true };
    }),
    renewLock: unaryCall("RenewLock", log, shutdown, async (req) => {
      const q = decodeRenewLock(req, limits);
      const r = await locks.renew(q.namespace, q.name, q.lockId, q.ttlMs);
      return { header: { revision: r.revision }, fencingToken: r.token, expireTime: r.expireTime };
    }),
  };
}
