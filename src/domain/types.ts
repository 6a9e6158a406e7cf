/**
 * Domain types for versioned keys.
 *
 * Terminology:
 * - namespace: an isolation unit (a tenant, an agent system), `[a-z0-9][a-z0-9._-]{0,62}`.
 * - key: UTF-8, 1..maxKeyBytes bytes, no NUL; unique within a namespace.
 * - version: per key, 1 on create and +1 on every change; a deleted (or expired)
 *   key that is written again starts a new incarnation at version 1.
 * - revision: one store-wide counter, +1 for every change, assigned in commit
 *   order (no gaps, no reordering). Every reply carries the revision it reflects.
 * - lock / fencing token: a named lock; each acquisition gets a token strictly
 *   greater than every earlier one for that name. A write may carry a fence
 *   {lock name, token} and is refused once a newer token exists.
 * - stream / position: an append-only event log; an event's position is the
 *   revision of the append that wrote it.
 *
 * This module imports no driver and no transport: it is the language the
 * stores and the gRPC edge share.
 */
import type { CallerGone } from "../errors/abort";

export interface Item {
  key: string;
  value: Buffer;
  contentType: string;
  version: number;
  createRevision: number;
  modRevision: number;
  createTime: Date;
  updateTime: Date;
  /** Undefined: no expiry. */
  expireTime: Date | undefined;
}

/** The condition a write requires of the key's current state. */
export type Expected = { kind: "version"; version: number } | { kind: "absent" } | { kind: "any" };

export interface Fence {
  lockName: string;
  token: number;
}

interface WriteBase {
  namespace: string;
  key: string;
  expected: Expected;
  idempotencyKey: string | undefined;
  fence: Fence | undefined;
}

export interface PutCommand extends WriteBase {
  op: "put";
  value: Buffer;
  contentType: string;
  /** Undefined: no expiry. */
  ttlMs: number | undefined;
}

export interface DeleteCommand extends WriteBase {
  op: "delete";
}

export type WriteCommand = PutCommand | DeleteCommand;

/** The result of a write: applied or not, with the item written or the current one. */
export interface WriteOutcome {
  applied: boolean;
  /** Put applied: the new item. Delete applied: the removed item. Not applied: the current item. */
  item: Item | undefined;
  /** Revision the outcome reflects: the write's own revision when it changed something. */
  revision: number;
  /** True when an identical earlier request with the same idempotency key produced this outcome. */
  replayed: boolean;
}

export interface ReadResult {
  item: Item | undefined;
  revision: number;
}

export interface ListQuery {
  namespace: string;
  prefix: string;
  /** Exclusive lower bound (the last key of the previous page), or undefined. */
  after: string | undefined;
  limit: number;
  includeValues: boolean;
}

export interface ListResult {
  items: Item[];
  revision: number;
  /** True when more keys follow the last one returned. */
  more: boolean;
}

/** What a write knows of its caller. */
export interface WriteOptions {
  /** Tells whether the caller has gone: a write not yet made must not be made then. */
  gone?: CallerGone;
  /** The caller's deadline in ms since the epoch: a write not made by then is not made. */
  deadline?: number;
  /** Who the write is made for, recorded with the change (the audit trail); unset: not recorded. */
  actor?: Actor;
}

/**
 * The audit trail's record of who made a change: the principal's name ("" when
 * auth is off: anonymous) and the call's request id (x-request-id).
 */
export interface Actor {
  principal: string;
  requestId: string;
}

export type ReadConsistency = "linearizable" | "database";

/**
 * What the key-value service needs of a store. Implemented by the Postgres
 * store and by the cached store (Postgres + Redis); one conformance suite runs
 * against both.
 */
export interface KvStore {
  get(namespace: string, key: string, consistency: ReadConsistency): Promise<ReadResult>;
  write(command: WriteCommand, opts?: WriteOptions): Promise<WriteOutcome>;
  list(query: ListQuery): Promise<ListResult>;
}
