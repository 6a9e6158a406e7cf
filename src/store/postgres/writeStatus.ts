/**
 * The codes that cross between TypeScript and the write functions
 * (src/store/postgres/functions/): what each write or append asks for, and
 * the status it comes back with. One named set per meaning; the same number
 * means different things in different sets (4 is a reused idempotency key for
 * a KV write, a reused event id for an append).
 *
 * Each function file declares the sets it uses as plpgsql constants named by
 * one convention: `c_` + the member in snake_case for a status (Applied ->
 * c_applied), `c_op_` for an operation (Put -> c_op_put), `c_expect_` for a
 * condition kind (NoStream -> c_expect_no_stream).
 * test/unit/writeStatus.test.ts reads the files and checks that the names and
 * values agree with these objects.
 */

/** agentstate_kv_write's per-write status (functions/agentstate_kv_write.sql says what each means). */
export const KvWriteStatus = {
  /** Inside the function: not decided yet. Never returned. */
  Pending: 0,
  Applied: 1,
  NotApplied: 2,
  Replayed: 3,
  IdempotencyKeyReused: 4,
  FenceUnknown: 5,
  FenceStale: 6,
  DeadlinePassed: 7,
  Busy: 8,
} as const;
export type KvWriteStatus = (typeof KvWriteStatus)[keyof typeof KvWriteStatus];

/** agentstate_kv_write's p_op. */
export const KvWriteOp = { Put: 1, Delete: 2 } as const;
export type KvWriteOp = (typeof KvWriteOp)[keyof typeof KvWriteOp];

/** agentstate_kv_write's p_exp_kind: the condition a write is made under. */
export const KvExpectedKind = { Any: 0, Absent: 1, Version: 2 } as const;
export type KvExpectedKind = (typeof KvExpectedKind)[keyof typeof KvExpectedKind];

/** agentstate_event_append's per-append status (functions/agentstate_event_append.sql says what each means). */
export const EventAppendStatus = {
  /** Inside the function: not decided yet. Never returned. */
  Pending: 0,
  Appended: 1,
  NotApplied: 2,
  Replayed: 3,
  IdReused: 4,
  PartialReplay: 5,
  FenceRefused: 6,
  DeadlinePassed: 7,
  Busy: 8,
} as const;
export type EventAppendStatus = (typeof EventAppendStatus)[keyof typeof EventAppendStatus];

/** agentstate_event_append's p_exp_kind: the stream version an append expects. */
export const EventExpectedKind = { Any: 0, NoStream: 1, Exists: 2, Version: 3 } as const;
export type EventExpectedKind = (typeof EventExpectedKind)[keyof typeof EventExpectedKind];

/** agentstate_checkpoint_put's status (functions/agentstate_checkpoint_put.sql says what each means). */
export const CheckpointPutStatus = {
  Stored: 1,
  Conflict: 2,
  NotAfterHead: 3,
  /** A delta's base is not stored with the CRC and depth the put named (migrations/0017). */
  BaseMissing: 5,
} as const;
export type CheckpointPutStatus = (typeof CheckpointPutStatus)[keyof typeof CheckpointPutStatus];

/** agentstate_checkpoint_writes_put's status (functions/agentstate_checkpoint_writes_put.sql). */
export const CheckpointWritesStatus = {
  Stored: 1,
  TooLarge: 2,
} as const;
export type CheckpointWritesStatus = (typeof CheckpointWritesStatus)[keyof typeof CheckpointWritesStatus];
/** agentstate_checkpoint_put_batch's own status, beside CheckpointPutStatus (functions/agentstate_checkpoint_put_batch.sql). */
export const CheckpointPutBatchStatus = {
  Busy: 4,
} as const;
