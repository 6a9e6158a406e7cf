/**
 * The audit trail: who changed what in a namespace, and when. Every key write
 * (CompareAndSet, Delete) and every appended event records the principal it
 * was made for and its call's request id (WriteOptions.actor, kept by the
 * store with the history row or the event); AdminService.ListChanges reads
 * them back through the AuditLog port, newest first, one page at a time.
 * Never a value: an audit entry says who, what (key or stream, revision,
 * operation) and when.
 */

/**
 * What a change did: a key's put, delete or expiry (kv_history.op), an
 * appended event, or a checkpoint or store change (audit_changes.op, with a
 * target).
 */
export type ChangeOp =
  | "put"
  | "delete"
  | "expire"
  | "append"
  | "checkpoint_put"
  | "checkpoint_writes"
  | "thread_delete"
  | "thread_copy"
  | "checkpoint_prune"
  | "checkpoint_delete_runs"
  | "item_put"
  | "item_delete";

export interface ChangeRecord {
  op: ChangeOp;
  /** The key changed (put, delete, expire), or undefined for an event. */
  key: string | undefined;
  /** The stream appended to, or undefined. */
  stream: string | undefined;
  /**
   * What a checkpoint or store change was made to ("thread/checkpoint_ns/
   * checkpoint_id", a thread id, or "path/key"), or undefined for a key or an event.
   */
  target: string | undefined;
  /** The namespace revision of the change (an event's position). */
  revision: number;
  /** The key's version after a put (before a delete or expiry), or the event's stream version. */
  version: number;
  /**
   * The principal the change was made for: "" when auth was off (anonymous);
   * undefined when not recorded (expiries, and changes made by a replica of a
   * release before the audit trail).
   */
  principal: string | undefined;
  /** The call's request id (x-request-id); undefined when not recorded, as for `principal`. */
  requestId: string | undefined;
  time: Date;
}

/** Where a page ends: the position (time in µs since the epoch, revision) the next page starts below. */
export interface ChangePosition {
  atMicros: bigint;
  revision: number;
}

export interface ChangeQuery {
  namespace: string;
  /** Changes at or after this time (undefined: from the first). */
  since: Date | undefined;
  /** Changes before this time (undefined: up to now). */
  until: Date | undefined;
  /** Only the changes made for this principal (undefined: any). */
  principal: string | undefined;
  /** Only keys, streams and targets that start with this ("": all). */
  prefix: string;
  /** Most changes in the page. */
  limit: number;
  /** Continue below this position (a previous page's `next`); undefined: the newest first. */
  after: ChangePosition | undefined;
}

export interface ChangePage {
  changes: ChangeRecord[];
  /** Where the next page starts, or undefined on the last page. A page may hold fewer than `limit` changes and still have a next one (a filter's scan budget ran out). */
  next: ChangePosition | undefined;
}

/** Reads the audit trail (store/postgres/PostgresAuditLog). */
export interface AuditLog {
  changes(q: ChangeQuery): Promise<ChangePage>;
}
