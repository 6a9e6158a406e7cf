/**
 * gRPC handlers for agentstate.v1.StoreService. Each is the usual steps:
 * decode and validate the request (codec.ts), call the item store through the
 * domain port (what it throws is mapped by the call pipeline), encode the
 * reply. Items carry no revision (domain/items.ts), so replies have no header.
 */
import type { ItemStore, StoreItem } from "../../domain/items";
import type { Limits } from "../../domain/limits";
import type { StoreServiceServer } from "../../gen/agentstate/v1/store";
import { writeOptions, type CallEnv } from "../pipeline/context";
import { unary } from "../pipeline/unary";
import {
  decodeDeleteItem,
  decodeGetItem,
  decodeListPaths,
  decodePutItem,
  decodeSearchItems,
  storeItemToPb,
} from "./codec";

/** Room kept in a reply for everything but the items' values and names. */
const REPLY_ENVELOPE_BYTES = 64 * 1024;

/** The longest run of `items` from the start that fits in a reply (at least one). */
function fitting(items: StoreItem[], maxMessageBytes: number): StoreItem[] {
  let bytes = 0;
  let n = 0;
  for (const it of items) {
    bytes +=
      Buffer.byteLength(it.valueJson) +
      Buffer.byteLength(it.key) +
      Buffer.byteLength(it.path.join(".")) +
      8 * it.path.length +
      128;
    if (n > 0 && bytes > maxMessageBytes - REPLY_ENVELOPE_BYTES) break;
    n++;
  }
  return items.slice(0, n);
}

export function storeHandlers(store: ItemStore, limits: Limits, env: CallEnv): StoreServiceServer {
  return {
    putItem: unary("PutItem", env, async (req, ctx) => {
      const cmd = decodePutItem(req, limits);
      return { item: storeItemToPb(await store.put(cmd, writeOptions(ctx).actor)) };
    }),
    getItem: unary("GetItem", env, async (req) => {
      const q = decodeGetItem(req, limits);
      const item = await store.get(q, q.refreshTtl);
      return { found: item !== undefined, item: item && storeItemToPb(item) };
    }),
    deleteItem: unary("DeleteItem", env, async (req, ctx) => {
      const q = decodeDeleteItem(req, limits);
      return { deleted: await store.delete(q, writeOptions(ctx).actor) };
    }),
    searchItems: unary("SearchItems", env, async (req) => {
      const q = decodeSearchItems(req, limits);
      const all = await store.search(q);
      // Values up to the value limit each: a page stops before the message limit.
      const items = fitting(all, limits.maxMessageBytes);
      return { items: items.map(storeItemToPb), truncated: items.length < all.length };
    }),
    listPaths: unary("ListPaths", env, async (req) => {
      const q = decodeListPaths(req, limits);
      return { paths: (await store.listPaths(q)).map((labels) => ({ labels })) };
    }),
  };
}
