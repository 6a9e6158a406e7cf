/**
 * StoreService messages to domain values and back. Every decode* checks each
 * field against the limits (domain/itemRules.ts, the configured value and
 * page limits) and throws InvalidArgumentError naming it, in the order the
 * fields are listed, before anything reaches the store.
 */
import type { ItemAddress, ListPathsQuery, PutItemCommand, SearchItemsQuery, StoreItem } from "../../domain/items";
import { ITEM_LIMITS, parseItemFilter, parseItemValue, validatePath } from "../../domain/itemRules";
import type { Limits } from "../../domain/limits";
import { validateDurationMs, validateNamespace } from "../../domain/validate";
import { InvalidArgumentError } from "../../errors/errors";
import type {
  DeleteItemRequest,
  GetItemRequest,
  ListPathsRequest,
  PutItemRequest,
  SearchItemsRequest,
  StoreItem as PbStoreItem,
} from "../../gen/agentstate/v1/store";
import { decodeAddress, requireNonNegative } from "../codec/fields";

export function storeItemToPb(i: StoreItem): PbStoreItem {
  return {
    path: i.path,
    key: i.key,
    valueJson: i.valueJson,
    createTime: i.createTime,
    updateTime: i.updateTime,
    expireTime: i.expireTime,
  };
}

function decodeItemAddress(r: { namespace: string; path: string[]; key: string }, limits: Limits): ItemAddress {
  decodeAddress(r.namespace, "key", r.key, limits);
  return { namespace: r.namespace, path: validatePath("path", r.path, true), key: r.key };
}

/** A page size: 0 is the default page, else 1..listMaxLimit. */
function decodeLimit(v: number, limits: Limits): number {
  if (!Number.isInteger(v) || v < 0 || v > limits.listMaxLimit) {
    throw new InvalidArgumentError(
      "limit",
      `must be between 0 and ${limits.listMaxLimit} (0: default ${limits.listDefaultLimit})`,
    );
  }
  return v === 0 ? limits.listDefaultLimit : v;
}

function decodeOffset(v: number): number {
  requireNonNegative("offset", v);
  if (v > ITEM_LIMITS.maxOffset) throw new InvalidArgumentError("offset", `must be at most ${ITEM_LIMITS.maxOffset}`);
  return v;
}

export function decodePutItem(r: PutItemRequest, limits: Limits): PutItemCommand {
  const address = decodeItemAddress(r, limits);
  const valueJson = parseItemValue("value_json", r.valueJson, limits.maxValueBytes);
  const ttlMs =
    r.ttl === undefined
      ? undefined
      : validateDurationMs("ttl", r.ttl, { maxSeconds: limits.maxTtlSeconds, allowZero: false });
  return { ...address, valueJson, ttlMs };
}

export function decodeGetItem(r: GetItemRequest, limits: Limits): ItemAddress & { refreshTtl: boolean } {
  return { ...decodeItemAddress(r, limits), refreshTtl: r.refreshTtl };
}

export function decodeDeleteItem(r: DeleteItemRequest, limits: Limits): ItemAddress {
  return decodeItemAddress(r, limits);
}

export function decodeSearchItems(r: SearchItemsRequest, limits: Limits): SearchItemsQuery {
  validateNamespace("namespace", r.namespace);
  return {
    namespace: r.namespace,
    pathPrefix: validatePath("path_prefix", r.pathPrefix, false),
    filter: parseItemFilter("filter_json", r.filterJson, limits.maxValueBytes),
    limit: decodeLimit(r.limit, limits),
    offset: decodeOffset(r.offset),
    refreshTtl: r.refreshTtl,
  };
}

export function decodeListPaths(r: ListPathsRequest, limits: Limits): ListPathsQuery {
  validateNamespace("namespace", r.namespace);
  const prefix = validatePath("prefix", r.prefix, false);
  const suffix = validatePath("suffix", r.suffix, false);
  requireNonNegative("max_depth", r.maxDepth, "0: no truncation");
  return {
    namespace: r.namespace,
    prefix,
    suffix,
    maxDepth: Math.min(r.maxDepth, ITEM_LIMITS.maxPathLabels),
    limit: decodeLimit(r.limit, limits),
    offset: decodeOffset(r.offset),
  };
}
