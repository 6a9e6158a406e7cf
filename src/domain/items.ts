/**
 * Store items: JSON documents for agents' long-term memory (StoreService,
 * shaped after LangGraph's BaseStore).
 *
 * Terminology:
 * - namespace: the agentstate namespace (tenant) the items live in.
 * - path: a tuple of labels grouping items inside a namespace; what LangGraph
 *   calls an item's "namespace" (e.g. ["users", "u1", "memories"]). Labels
 *   never contain ".", so a path is stored as its labels joined by "."; a
 *   search under a path prefix is then a range of that text.
 * - key: an item's name within its path.
 * - value: a JSON object, kept as the client sent it (as jsonb).
 * - TTL: an item may expire; a read may refresh it (its expiry restarts from
 *   the read). An expired item reads as absent until the janitor removes it.
 *
 * Items are last-writer-wins documents outside the namespace's revision
 * sequence: the store is a memory for agents, not a log of state changes,
 * and LangGraph's BaseStore has no notion of versions.
 */

import type { Actor } from "./types";

export interface StoreItem {
  path: string[];
  key: string;
  /** The value as JSON text (a JSON object). */
  valueJson: string;
  createTime: Date;
  updateTime: Date;
  /** Undefined: no expiry. */
  expireTime: Date | undefined;
}

export interface ItemAddress {
  namespace: string;
  path: string[];
  key: string;
}

export interface PutItemCommand extends ItemAddress {
  /** JSON text of an object (checked by parseItemValue). */
  valueJson: string;
  /** Undefined: no expiry. */
  ttlMs: number | undefined;
}

export type FilterOp = "eq" | "ne" | "gt" | "gte" | "lt" | "lte";

/** One condition on a top-level field of the value. */
export interface FilterCondition {
  field: string;
  op: FilterOp;
  value: unknown;
}

/**
 * A search filter as the store runs it: `contains`, a JSON object the value
 * must contain (jsonb @>, served by the GIN index), narrowed by exact
 * `conditions`.
 */
export interface ItemFilter {
  contains: Record<string, unknown>;
  conditions: FilterCondition[];
}

export interface SearchItemsQuery {
  namespace: string;
  pathPrefix: string[];
  filter: ItemFilter;
  limit: number;
  offset: number;
  refreshTtl: boolean;
}

export interface ListPathsQuery {
  namespace: string;
  /** Labels a path must start with; "*" matches any one label. */
  prefix: string[];
  /** Labels a path must end with; "*" matches any one label. */
  suffix: string[];
  /** 0: no truncation. */
  maxDepth: number;
  limit: number;
  offset: number;
}

/** The port StoreService needs; the Postgres adapter implements it. */
/** put and delete take their `actor`, recorded by the audit trail (undefined: not recorded). */
export interface ItemStore {
  put(cmd: PutItemCommand, actor?: Actor): Promise<StoreItem>;
  /** A live item (its expiry restarted when `refreshTtl` and it has a TTL), or undefined. */
  get(address: ItemAddress, refreshTtl: boolean): Promise<StoreItem | undefined>;
  /** True when a live item was removed. */
  delete(address: ItemAddress, actor?: Actor): Promise<boolean>;
  /** Live matching items, most recently updated first, then by path and key. */
  search(q: SearchItemsQuery): Promise<StoreItem[]>;
  /** Distinct paths of live items, in label order. */
  listPaths(q: ListPathsQuery): Promise<string[][]>;
}
