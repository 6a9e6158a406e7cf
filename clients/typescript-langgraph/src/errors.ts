/**
 * The errors AgentstateSaver throws for what the server refused. Anything
 * else (the server unreachable, a deadline) is the gRPC ServiceError as
 * @agentstate/client gives it.
 */

/**
 * A strict put (the default) whose parent is no longer the latest checkpoint
 * of its thread and checkpoint namespace: another worker moved the thread on.
 * Nothing was written. Re-read the thread (`getTuple` without a checkpoint id)
 * and run the step again from `head`; to fork on purpose, put with
 * `configurable.agentstate_fork: true` or use a saver with `strict: false`.
 * The server's status is ABORTED, reason CHECKPOINT_CONFLICT.
 */
export class CheckpointConflictError extends Error {
  override readonly name = "CheckpointConflictError";

  constructor(
    /** The thread's latest checkpoint id ("" if the thread has none in this checkpoint namespace). */
    readonly head: string,
    readonly threadId: string,
    readonly checkpointNs: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Bad input, refused before anything was written: a config without
 * `configurable.thread_id` (or, for putWrites, `checkpoint_id`), a thread id,
 * checkpoint ns or id that is not a string (or number), metadata that is not
 * an object, writes that are not `[channel, value]` pairs, a field over the
 * server's limits (INVALID_ARGUMENT: `field` is the request field it names),
 * a request over the message limit or a putWrites that would take its
 * checkpoint past the size one read returns (RESOURCE_EXHAUSTED: `field` is
 * `writes` or `request`; the message names the limit). `cause` is the gRPC
 * error when the server refused it.
 */
export class CheckpointInputError extends Error {
  override readonly name = "CheckpointInputError";

  constructor(
    readonly field: string,
    message: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}
