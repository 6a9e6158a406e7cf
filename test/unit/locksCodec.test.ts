import * as assert from "node:assert/strict";
import { loadConfig } from "../../src/config/config";
import { decodeLock, decodeRenewLock, decodeUnlock } from "../../src/grpc/locks/codec";
import { LockRequest, RenewLockRequest, UnlockRequest } from "../../src/gen/agentstate/v1/lock";
import { expectInvalidArgument as rejects } from "../support/expectInvalidArgument";

const limits = loadConfig({}).limits;
const ttl = { seconds: 1, nanos: 0 };

describe("grpc/locks/codec", () => {
  it("decodeLock: ttl required, wait 0 by default, names each bad field in order", () => {
    const lock = (r: Parameters<typeof LockRequest.fromPartial>[0]) => decodeLock(LockRequest.fromPartial(r), limits);
    assert.deepEqual(lock({ namespace: "ns", name: "l", ttl, owner: "o" }), {
      namespace: "ns",
      name: "l",
      ttlMs: 1000,
      waitMs: 0,
      owner: "o",
    });
    assert.equal(lock({ namespace: "ns", name: "l", ttl, wait: { seconds: 0, nanos: 0 } }).waitMs, 0);
    rejects(() => lock({ namespace: "", name: "" }), "namespace");
    rejects(() => lock({ namespace: "ns", name: "" }), "name");
    rejects(() => lock({ namespace: "ns", name: "l" }), "ttl", /^ttl: is required$/);
    rejects(() => lock({ namespace: "ns", name: "l", ttl: { seconds: 0, nanos: 0 } }), "ttl", /at least 1 millisecond/);
    rejects(() => lock({ namespace: "ns", name: "l", ttl, wait: { seconds: -1, nanos: 0 } }), "wait");
    rejects(() => lock({ namespace: "ns", name: "l", ttl, owner: "o".repeat(limits.maxOwnerBytes + 1) }), "owner");
  });

  it("decodeUnlock and decodeRenewLock: the lock, its id, and for a renewal the ttl", () => {
    assert.deepEqual(decodeUnlock(UnlockRequest.fromPartial({ namespace: "ns", name: "l", lockId: "i" }), limits), {
      namespace: "ns",
      name: "l",
      lockId: "i",
    });
    const renew = (r: Parameters<typeof RenewLockRequest.fromPartial>[0]) =>
      decodeRenewLock(RenewLockRequest.fromPartial(r), limits);
    assert.deepEqual(renew({ namespace: "ns", name: "l", lockId: "i", ttl }), {
      namespace: "ns",
      name: "l",
      lockId: "i",
      ttlMs: 1000,
    });
    rejects(() => decodeUnlock(UnlockRequest.fromPartial({ namespace: "ns", name: "l" }), limits), "lock_id");
    rejects(() => renew({ namespace: "ns", name: "", lockId: "i", ttl }), "name");
    rejects(() => renew({ namespace: "ns", name: "l", ttl }), "lock_id", /^lock_id: is required$/);
    rejects(() => renew({ namespace: "ns", name: "l", lockId: "i" }), "ttl", /^ttl: is required$/);
  });
});
