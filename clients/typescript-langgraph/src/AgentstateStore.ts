/**
 * AgentstateStore: LangGraph's BaseStore (long-term memory: JSON items under
 * namespace tuples) on agentstate's StoreService.
 *
 * The items live in one agentstate namespace (the tenant); LangGraph's
 * namespace array is the item's *path* inside it (the server's name for it).
 * Every operation of a batch is one RPC, run in order (a search or listing
 * past 1000 results takes several; a search page the server cut at the
 * message limit is continued).
 *
 * TTL, as LangGraph's Python stores have it (TTLConfig): `ttl.defaultTtl`
 * (minutes) applies to every put without its own `ttl`; `ttl.refreshOnRead`
 * (default true) restarts an item's TTL when get or search returns it. The
 * server hides expired items at once and deletes them in its background
 * sweep. Per call: `put(ns, key, value, index, { ttl })`, and `refreshTtl`
 * on get and search operations passed to batch.
 *
 * Semantic search is not supported: a search `query` is ignored (no score),
 * as in LangGraph's InMemoryStore without an index, and so is `index` on put.
 */
import type { AgentstateClient, StoreItem } from "@agentstate/client";
import {
  BaseStore,
  InvalidNamespaceError,
  type GetOperation,
  type Item,
  type ListNamespacesOperation,
  type MatchCondition,
  type Operation,
  type OperationResults,
  type PutOperation,
  type SearchItem,
  type SearchOperation,
} from "@langchain/langgraph-checkpoint";

/** LangGraph's TTL settings (minutes), as in its Python TTLConfig. */
export interface StoreTtlConfig {
  /** TTL in minutes of items put without their own; unset: no expiry. */
  defaultTtl?: number;
  /** Restart an item's TTL when get or search returns it (default true). */
  refreshOnRead?: boolean;
}

export interface AgentstateStoreOptions {
  /** An agentstate client (address, TLS, interceptors such as auth come with it). */
  client: AgentstateClient;
  /** The agentstate namespace the items live in: `[a-z0-9][a-z0-9._-]{0,62}`. */
  namespace: string;
  ttl?: StoreTtlConfig;
}

/** A put with its own TTL in minutes (null: none; undefined: the store's default). */
export type AgentstatePutOperation = PutOperation & { ttl?: number | null };
/** A get or search that overrides the store's refreshOnRead. */
export type AgentstateGetOperation = GetOperation & { refreshTtl?: boolean };
export type AgentstateSearchOperation = SearchOperation & { refreshTtl?: boolean };

/** The server's default page limit (AGENTSTATE_LIST_MAX_LIMIT): larger limits are read in pages. */
export const MAX_PAGE = 1000;

const isPut = (op: Operation): op is AgentstatePutOperation => "value" in op;
const isSearch = (op: Operation): op is AgentstateSearchOperation => "namespacePrefix" in op;
const isGet = (op: Operation): op is AgentstateGetOperation => "key" in op && !("value" in op);

function ttlDuration(minutes: number) {
  if (!Number.isFinite(minutes) || minutes <= 0) {
    throw new RangeError(`ttl must be a positive number of minutes, got ${minutes}`);
  }
  const ms = Math.max(1, Math.round(minutes * 60_000));
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/** One pattern equivalent to all `paths` (each must match), or undefined when none can. */
function mergePatterns(paths: string[][], fromEnd: boolean): string[] | undefined {
  const length = Math.max(0, ...paths.map((p) => p.length));
  const merged: string[] = Array.from({ length }, () => "*");
  for (const p of paths) {
    const offset = fromEnd ? length - p.length : 0;
    for (const [i, label] of p.entries()) {
      if (label === "*") continue;
      const cur = merged[offset + i];
      if (cur !== "*" && cur !== label) return undefined;
      merged[offset + i] = label;
    }
  }
  return merged;
}

/** Labels as LangGraph checks them (no ".", ":", NUL or empty label), for ops given to batch directly. */
function checkLabels(path: string[]): void {
  for (const label of path) {
    if (
      typeof label !== "string" ||
      label === "" ||
      label.includes(".") ||
      label.includes(":") ||
      label.includes("\0")
    ) {
      throw new InvalidNamespaceError(`Invalid namespace label ${JSON.stringify(label)} in ${JSON.stringify(path)}`);
    }
  }
}

export class AgentstateStore extends BaseStore {
  readonly client: AgentstateClient;
  readonly namespace: string;
  readonly ttl: StoreTtlConfig;

  constructor(options: AgentstateStoreOptions) {
    super();
    this.client = options.client;
    this.namespace = options.namespace;
    this.ttl = { ...options.ttl };
  }

  /** As BaseStore.put, plus `options.ttl` in minutes (null: no expiry; default: the store's defaultTtl). */
  override async put(
    namespace: string[],
    key: string,
    value: Record<string, unknown>,
    index?: false | string[],
    options: { ttl?: number | null } = {},
  ): Promise<void> {
    if (options.ttl === undefined) return super.put(namespace, key, value, index);
    if (namespace.length === 0) throw new InvalidNamespaceError("Namespace cannot be empty.");
    if (namespace[0] === "langgraph")
      throw new InvalidNamespaceError('Root label for namespace cannot be "langgraph".');
    await this.batch([{ namespace, key, value, index, ttl: options.ttl }]);
  }

  async batch<Op extends Operation[]>(operations: Op): Promise<OperationResults<Op>> {
    const results: unknown[] = [];
    for (const op of operations) {
      if (isPut(op)) results.push(await this.runPut(op));
      else if (isSearch(op)) results.push(await this.runSearch(op));
      else if (isGet(op)) results.push(await this.runGet(op));
      else results.push(await this.runList(op as ListNamespacesOperation));
    }
    return results as OperationResults<Op>;
  }

  private toItem(i: StoreItem): Item {
    return {
      namespace: i.path,
      key: i.key,
      value: JSON.parse(i.valueJson) as Record<string, unknown>,
      createdAt: i.createTime ?? new Date(0),
      updatedAt: i.updateTime ?? new Date(0),
    };
  }

  private async runGet(op: AgentstateGetOperation): Promise<Item | null> {
    checkLabels(op.namespace);
    const res = await this.client.getItem({
      namespace: this.namespace,
      path: op.namespace,
      key: op.key,
      refreshTtl: op.refreshTtl ?? this.ttl.refreshOnRead ?? true,
    });
    return res.found && res.item ? this.toItem(res.item) : null;
  }

  private async runPut(op: AgentstatePutOperation): Promise<void> {
    checkLabels(op.namespace);
    if (op.namespace.length === 0) throw new InvalidNamespaceError("Namespace cannot be empty.");
    if (op.value === null) {
      await this.client.deleteItem({ namespace: this.namespace, path: op.namespace, key: op.key });
      return;
    }
    const minutes = op.ttl === undefined ? this.ttl.defaultTtl : op.ttl;
    await this.client.putItem({
      namespace: this.namespace,
      path: op.namespace,
      key: op.key,
      valueJson: JSON.stringify(op.value),
      ttl: minutes === undefined || minutes === null ? undefined : ttlDuration(minutes),
    });
  }

  private async runSearch(op: AgentstateSearchOperation): Promise<SearchItem[]> {
    checkLabels(op.namespacePrefix);
    const limit = op.limit ?? 10;
    let offset = op.offset ?? 0;
    if (limit < 0 || offset < 0) throw new RangeError("search limit and offset must be >= 0");
    const filterJson = op.filter && Object.keys(op.filter).length > 0 ? JSON.stringify(op.filter) : "";
    const out: SearchItem[] = [];
    while (out.length < limit) {
      const page = Math.min(limit - out.length, MAX_PAGE);
      const res = await this.client.searchItems({
        namespace: this.namespace,
        pathPrefix: op.namespacePrefix,
        filterJson,
        limit: page,
        offset,
        refreshTtl: op.refreshTtl ?? this.ttl.refreshOnRead ?? true,
      });
      out.push(...res.items.map((i) => this.toItem(i)));
      offset += res.items.length;
      if (!res.truncated && res.items.length < page) break;
    }
    return out;
  }

  private async runList(op: ListNamespacesOperation): Promise<string[][]> {
    const conditions: MatchCondition[] = op.matchConditions ?? [];
    for (const c of conditions) checkLabels(c.path.filter((l) => l !== "*"));
    const prefix = mergePatterns(
      conditions.filter((c) => c.matchType === "prefix").map((c) => c.path),
      false,
    );
    const suffix = mergePatterns(
      conditions.filter((c) => c.matchType === "suffix").map((c) => c.path),
      true,
    );
    const limit = op.limit ?? 100;
    if (prefix === undefined || suffix === undefined || limit <= 0) return [];
    const out: string[][] = [];
    let offset = op.offset ?? 0;
    while (out.length < limit) {
      const page = Math.min(limit - out.length, MAX_PAGE);
      const res = await this.client.listPaths({
        namespace: this.namespace,
        prefix,
        suffix,
        maxDepth: op.maxDepth ?? 0,
        limit: page,
        offset,
      });
      out.push(...res.paths.map((p) => p.labels));
      offset += res.paths.length;
      if (res.paths.length < page) break;
    }
    return out;
  }
}
