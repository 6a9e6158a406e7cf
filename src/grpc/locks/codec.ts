/**
 * LockService requests to domain values. Every decode* checks each field
 * against the limits and throws InvalidArgumentError naming it, in the order
 * the fields are listed, before the lock service is called.
 */
import type { Limits } from "../../domain/limits";
import { validateDurationMs, validateShortString } from "../../domain/validate";
import { InvalidArgumentError } from "../../errors/errors";
import type { Duration } from "../../gen/google/protobuf/duration";
import type { LockRequest, RenewLockRequest, UnlockRequest } from "../../gen/agentstate/v1/lock";
import { decodeAddress } from "../codec/fields";

/** A lock's time to live: required, at least 1 ms, at most the limit. */
function lockTtlMs(ttl: Duration | undefined, limits: Limits): number {
  if (ttl === undefined) throw new InvalidArgumentError("ttl", "is required");
  return validateDurationMs("ttl", ttl, { maxSeconds: limits.maxLockTtlSeconds, allowZero: false });
}

/** The lock an Unlock or RenewLock names, and the id its Lock returned. */
function decodeHeld(r: UnlockRequest | RenewLockRequest, limits: Limits) {
  decodeAddress(r.namespace, "name", r.name, limits);
  if (r.lockId === "") throw new InvalidArgumentError("lock_id", "is required");
  return { namespace: r.namespace, name: r.name, lockId: r.lockId };
}

export function decodeLock(r: LockRequest, limits: Limits) {
  decodeAddress(r.namespace, "name", r.name, limits);
  const ttlMs = lockTtlMs(r.ttl, limits);
  const waitMs =
    r.wait === undefined
      ? 0
      : validateDurationMs("wait", r.wait, { maxSeconds: limits.maxLockWaitSeconds, allowZero: true });
  const owner = validateShortString("owner", r.owner, limits.maxOwnerBytes);
  return { namespace: r.namespace, name: r.name, ttlMs, waitMs, owner };
}

export function decodeUnlock(r: UnlockRequest, limits: Limits) {
  return decodeHeld(r, limits);
}

export function decodeRenewLock(r: RenewLockRequest, limits: Limits) {
  return { ...decodeHeld(r, limits), ttlMs: lockTtlMs(r.ttl, limits) };
}
