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
 * `configurable.thread_id` (or, for putWrites, `checkpoint_id`), metadata
 * that is not a JSON object, a value over the server's limits. `field` names
 * the request field (the server's INVALID_ARGUMENT or RESOURCE_EXHAUSTED
 * details are in the message).
 */
export class CheckpointInputError extends Error {
  override readonly name = "CheckpointInputError";

  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}
