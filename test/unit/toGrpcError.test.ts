import * as assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import * as errors from "../../src/errors/errors";
import { GRPC_MAPPINGS, toGrpcError } from "../../src/grpc/toGrpcError";
import type { Logger } from "../../src/log/Logger";

function capture() {
  const logged: { msg: string; fields: Record<string, unknown> | undefined }[] = [];
  const log = { error: (msg: string, fields?: Record<string, unknown>) => logged.push({ msg, fields }) };
  return { logged, log: log as unknown as Logger };
}

const fence = { lockName: "l", token: 7 };

/**
 * What clients saw before the errors were named for what happened: every
 * code, message and metadata value here is part of the contract.
 */
const CASES: { error: errors.AppError; code: status; details: string; reason?: string; field?: string }[] = [
  {
    error: new errors.InvalidArgumentError("key", "is empty"),
    code: status.INVALID_ARGUMENT,
    details: "key: is empty",
    field: "key",
  },
  { error: new errors.UnauthenticatedError("unknown token"), code: status.UNAUTHENTICATED, details: "unknown token" },
  {
    error: new errors.PermissionDeniedError('Get needs role "read" on namespace "demo"'),
    code: status.PERMISSION_DENIED,
    details: 'Get needs role "read" on namespace "demo"',
  },
  { error: new errors.NotFoundError("nothing here"), code: status.NOT_FOUND, details: "nothing here" },
  { error: new errors.StreamNotFoundError("s-1"), code: status.NOT_FOUND, details: 'stream "s-1" has no events' },
  {
    error: new errors.FenceUnknownError(fence),
    code: status.FAILED_PRECONDITION,
    details: 'fence token 7 was never issued for lock "l"',
    reason: "FENCE_UNKNOWN",
  },
  {
    error: new errors.FenceStaleError(fence, 9),
    code: status.FAILED_PRECONDITION,
    details: 'fence token 7 for lock "l" is stale: token 9 was issued since',
    reason: "FENCE_STALE",
  },
  {
    error: new errors.LockNotHeldError("l"),
    code: status.FAILED_PRECONDITION,
    details: 'lock "l" is not held under this lock_id (expired, released, or taken by another holder)',
    reason: "LOCK_NOT_HELD",
  },
  {
    error: new errors.LockBackendMixError("redlock a:6379/0 prefix p", ["postgres"], new Date(0)),
    code: status.FAILED_PRECONDITION,
    details:
      "lock backend mix: this replica keeps locks in redlock a:6379/0 prefix p, but replicas of this database keep them in postgres, which serves its locks (its locks drain by 1970-01-01T00:00:00.000Z once its replicas stop); configure every replica with the same lock backend (README: changing the lock backend)",
    reason: "LOCK_BACKEND_MIX",
  },
  {
    error: new errors.IdempotencyKeyReusedError(),
    code: status.FAILED_PRECONDITION,
    details: "idempotency_key was already used for a different request",
    reason: "IDEMPOTENCY_KEY_REUSED",
  },
  {
    error: new errors.EventIdReusedError(),
    code: status.FAILED_PRECONDITION,
    details: "event ids were already appended with different content, to another stream, or in another order or batch",
    reason: "EVENT_ID_REUSED",
  },
  {
    error: new errors.PartialBatchReplayError(),
    code: status.FAILED_PRECONDITION,
    details:
      "some event ids of this batch were already appended and others were not; re-send the original batch unchanged",
    reason: "PARTIAL_BATCH_REPLAY",
  },
  {
    error: new errors.CheckpointDeltaBaseError("messages", "its base version is not stored"),
    code: status.FAILED_PRECONDITION,
    details:
      'checkpoint value delta for channel "messages": its base version is not stored; nothing was written, send the value whole',
    reason: "CHECKPOINT_DELTA_BASE",
  },
  { error: new errors.StoreUnavailableError(), code: status.UNAVAILABLE, details: "database unavailable" },
  {
    error: new errors.WriteContendedError("write could not claim its key; nothing was written, retry"),
    code: status.UNAVAILABLE,
    details: "write could not claim its key; nothing was written, retry",
  },
  {
    error: new errors.CommitWindowPassedError(),
    code: status.UNAVAILABLE,
    details: "write took too long to commit safely; nothing was written, retry",
  },
  {
    error: new errors.LockQuorumUnavailableError(2, 3),
    code: status.UNAVAILABLE,
    details: "lock quorum unavailable: 2 of 3 Redis masters failed",
  },
  {
    error: new errors.ServerShuttingDownError("nothing was written"),
    code: status.UNAVAILABLE,
    details: "server shutting down; nothing was written",
  },
  {
    error: new errors.DeadlinePassedError("deadline passed; nothing was written"),
    code: status.DEADLINE_EXCEEDED,
    details: "deadline passed; nothing was written",
  },
  {
    error: new errors.StatementTimedOutError(),
    code: status.DEADLINE_EXCEEDED,
    details: "database statement timed out",
  },
  {
    error: new errors.CallerCancelledError("nothing was written"),
    code: status.CANCELLED,
    details: "caller went away; nothing was written",
  },
  {
    error: new errors.CheckpointConflictError("ckpt-2"),
    code: status.ABORTED,
    details: "checkpoint conflict: the parent is not the thread's latest checkpoint, which is ckpt-2",
    reason: "CHECKPOINT_CONFLICT",
  },
  {
    error: new errors.LimitExceededError("AGENTSTATE_X", "too many x"),
    code: status.RESOURCE_EXHAUSTED,
    details: "too many x",
  },
  {
    error: new errors.SubscriberTooSlowError(250),
    code: status.RESOURCE_EXHAUSTED,
    details: "subscriber too slow: nothing was read for 250 ms; resubscribe from the last position received",
  },
];

describe("toGrpcError: the one table from domain errors to gRPC", () => {
  it("maps every domain error class exported by src/errors itself (none falls back to an ancestor)", () => {
    const classes = Object.entries(errors).filter(
      ([, v]) => typeof v === "function" && (v as { prototype: unknown }).prototype instanceof errors.AppError,
    );
    assert.ok(classes.length >= 15, `only ${classes.length} error classes found`);
    for (const [name, cls] of classes) assert.ok(GRPC_MAPPINGS.has(cls as never), `${name} has no gRPC mapping`);
    for (const cls of GRPC_MAPPINGS.keys()) assert.ok(Object.values(errors).includes(cls as never));
  });

  it("every class is covered below, with the code, message and metadata clients saw before", () => {
    const covered = new Set(CASES.map((c) => c.error.constructor));
    for (const cls of GRPC_MAPPINGS.keys()) assert.ok(covered.has(cls as never), `${cls.name} has no case`);
  });

  for (const c of CASES) {
    it(`${c.error.constructor.name} -> ${status[c.code]}${c.reason ? ` (${c.reason})` : ""}`, () => {
      const { logged, log } = capture();
      const e = toGrpcError(c.error, log);
      assert.equal(e.code, c.code);
      assert.equal(e.details, c.details);
      assert.deepEqual(e.metadata?.get("agentstate-reason"), c.reason === undefined ? [] : [c.reason]);
      assert.deepEqual(e.metadata?.get("agentstate-field"), c.field === undefined ? [] : [c.field]);
      assert.equal(logged.length, 0);
    });
  }

  it("a checkpoint conflict carries the head in agentstate-checkpoint-head (empty: the thread has none)", () => {
    for (const head of ["ckpt-2", ""]) {
      const e = toGrpcError(new errors.CheckpointConflictError(head), capture().log);
      assert.deepEqual(e.metadata?.get("agentstate-checkpoint-head"), [head]);
    }
  });

  it("a subclass not in the table is answered as its nearest mapped ancestor", () => {
    class OtherStreamMissing extends errors.NotFoundError {}
    const e = toGrpcError(new OtherStreamMissing("gone"), capture().log);
    assert.equal(e.code, status.NOT_FOUND);
    assert.equal(e.details, "gone");
  });

  it("anything else is a generic INTERNAL, with the stack in the log only", () => {
    const { logged, log } = capture();
    const e = toGrpcError(new TypeError("secret detail"), log);
    assert.equal(e.code, status.INTERNAL);
    assert.equal(e.details, "internal error");
    assert.equal(e.metadata, undefined);
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.fields?.error, "secret detail");
    assert.match(String(logged[0]!.fields?.stack), /TypeError: secret detail/);
  });
});
