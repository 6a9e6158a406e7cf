/**
 * Typed errors, each named for what happened. The domain and the stores throw
 * these; the gRPC edge maps each class to a status code (and, for refusals,
 * the `agentstate-reason` a client can branch on) in exactly one table,
 * src/grpc/toGrpcError.ts. Anything else that is thrown is a bug: logged with
 * its stack, answered as a generic INTERNAL.
 *
 * The messages are part of the contract clients see: change them only on purpose.
 */
export abstract class AppError extends Error {}

/** A fence as the fence errors name it (domain/types.ts Fence; not imported, so errors depend on nothing). */
interface FenceRef {
  lockName: string;
  token: number;
}

// --- Bad input -------------------------------------------------------------

/** Bad input. `field` names the offending request field, the message states the limit. */
export class InvalidArgumentError extends AppError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

// --- Not there -------------------------------------------------------------

/** What the request names does not exist. */
export class NotFoundError extends AppError {}

export class StreamNotFoundError extends NotFoundError {
  constructor(stream: string) {
    super(`stream "${stream}" has no events`);
  }
}

// --- Refused by the state (nothing changed) --------------------------------

/** A fenced write whose token was never issued for its lock name. */
export class FenceUnknownError extends AppError {
  constructor(fence: FenceRef) {
    super(`fence token ${fence.token} was never issued for lock "${fence.lockName}"`);
  }
}

/** A fenced write whose token is older than the latest issued for its lock name (guarantee 4). */
export class FenceStaleError extends AppError {
  constructor(fence: FenceRef, latest: number) {
    super(`fence token ${fence.token} for lock "${fence.lockName}" is stale: token ${latest} was issued since`);
  }
}

/** Unlock or RenewLock with a lock id that does not hold the lock (any more). */
export class LockNotHeldError extends AppError {
  constructor(name: string) {
    super(`lock "${name}" is not held under this lock_id (expired, released, or taken by another holder)`);
  }
}

/** An idempotency key sent again with a different request (guarantee 5). */
/**
 * Replicas of this database keep their locks in different backends, and this
 * replica's is not the one serving: it refuses Lock and RenewLock rather than
 * grant a name another backend may hold (issue 19).
 */
export class LockBackendMixError extends AppError {
  constructor(backend: string, others: readonly string[], drainedAt: Date | undefined) {
    super(
      `lock backend mix: this replica keeps locks in ${backend}, but replicas of this database ` +
        `keep them in ${others.length > 0 ? others.join("; ") : "another backend"}, which serves its locks` +
        (drainedAt ? ` (its locks drain by ${drainedAt.toISOString()} once its replicas stop)` : "") +
        "; configure every replica with the same lock backend (README: changing the lock backend)",
    );
  }
}

export class IdempotencyKeyReusedError extends AppError {
  constructor() {
    super("idempotency_key was already used for a different request");
  }
}

/** Event ids sent again with other content, to another stream, or in another order or batch. */
export class EventIdReusedError extends AppError {
  constructor() {
    super("event ids were already appended with different content, to another stream, or in another order or batch");
  }
}

/** A batch of which some event ids were appended and others were not. */
export class PartialBatchReplayError extends AppError {
  constructor() {
    super(
      "some event ids of this batch were already appended and others were not; re-send the original batch unchanged",
    );
  }
}

/**
 * A strict checkpoint put whose parent is not the head of its thread and
 * checkpoint ns (another worker moved it): nothing was written. The caller
 * re-reads the head and re-runs its step (a fork would lose one chain).
 */
export class CheckpointConflictError extends AppError {
  constructor(readonly head: string) {
    super(
      head === ""
        ? "checkpoint conflict: the thread has no checkpoint in this checkpoint ns, so there is no parent to build on"
        : `checkpoint conflict: the parent is not the thread's latest checkpoint, which is ${head}`,
    );
  }
}

/**
 * A checkpoint put carrying a channel value as a delta whose base is not
 * stored as the put named it (no such version, another CRC-32, pruned or
 * deleted, or already as many deltas deep as the store allows): nothing was
 * written. The caller sends the put again with the whole value.
 */
export class CheckpointDeltaBaseError extends AppError {
  constructor(
    readonly channel: string,
    why: string,
  ) {
    super(
      `checkpoint value delta for channel ${JSON.stringify(channel)}: ${why}; nothing was written, send the value whole`,
    );
  }
}

// --- Who the caller is, and what it may do (guarantee 8) -------------------

/**
 * No credentials, or credentials that prove nothing: malformed, unknown,
 * expired, revoked, a JWT with a bad signature, issuer or audience. The
 * message says which kind of failure, never the credential.
 */
export class UnauthenticatedError extends AppError {}

/**
 * An authenticated principal without the role the call needs. The message
 * names the RPC, the namespace and the role, never whether the key exists.
 */
export class PermissionDeniedError extends AppError {}

// --- Cannot be served now (retrying may work) ------------------------------

/** The database cannot be reached or refuses connections. */
export class StoreUnavailableError extends AppError {
  constructor(message = "database unavailable") {
    super(message);
  }
}

/** A write or append that could not claim its key or stream in time; nothing was written. */
export class WriteContendedError extends AppError {}

/** A cached write that could no longer commit inside its cache fence (see CacheFence in domain/ports.ts). */
export class CommitWindowPassedError extends AppError {
  constructor() {
    super("write took too long to commit safely; nothing was written, retry");
  }
}

/** Too many Redlock masters failed for any quorum. */
export class LockQuorumUnavailableError extends AppError {
  constructor(failed: number, masters: number) {
    super(`lock quorum unavailable: ${failed} of ${masters} Redis masters failed`);
  }
}

/** The server is shutting down; `consequence` says what did (not) happen. */
export class ServerShuttingDownError extends AppError {
  constructor(consequence: string) {
    super(`server shutting down; ${consequence}`);
  }
}

// --- Time ran out ------------------------------------------------------------

/** The caller's deadline passed before the work was done. */
export class DeadlinePassedError extends AppError {}

/** A database statement ran past the statement timeout. */
export class StatementTimedOutError extends AppError {
  constructor() {
    super("database statement timed out");
  }
}

// --- The caller went away --------------------------------------------------

export class CallerCancelledError extends AppError {
  constructor(consequence: string) {
    super(`caller went away; ${consequence}`);
  }
}

// --- A named limit was reached (guarantee 9) --------------------------------

/** A caller reached a named limit; `limit` names it (the setting). */
export class LimitExceededError extends AppError {
  constructor(
    readonly limit: string,
    message: string,
  ) {
    super(message);
  }
}

/** A subscriber read nothing for the stall limit (AGENTSTATE_SUBSCRIBER_STALL_MS). */
export class SubscriberTooSlowError extends LimitExceededError {
  constructor(stallMs: number) {
    super(
      "AGENTSTATE_SUBSCRIBER_STALL_MS",
      `subscriber too slow: nothing was read for ${stallMs} ms; resubscribe from the last position received`,
    );
  }
}
