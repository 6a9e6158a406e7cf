/**
 * gRPC handlers for agentstate.v1.KeyValueService. Each is four steps: decode
 * and validate the request (codec.ts), call the store through the domain
 * interface, (what it throws is mapped by the call pipeline), stamp the reply
 * with the revision it reflects.
 */
import type { Limits } from "../../domain/limits";
import type { KvStore, WriteOutcome } from "../../domain/types";
import type { KeyValueServiceServer } from "../../gen/agentstate/v1/kv";
import { decodeCompareAndSet, decodeDelete, decodeGet, decodeList, encodePageToken, itemToPb } from "./codec";
import { writeOptions, type CallEnv } from "../pipeline/context";
import { unary } from "../pipeline/unary";

/** The reply of a CompareAndSet or Delete: same shape, same meaning. */
function writeReply(o: WriteOutcome) {
  return {
    header: { revision: o.revision },
    applied: o.applied,
    item: o.item && itemToPb(o.item),
    found: o.item !== undefined,
    replayed: o.replayed,
  };
}

export function keyValueHandlers(store: KvStore, limits: Limits, env: CallEnv): KeyValueServiceServer {
  return {
    get: unary("Get", env, async (req) => {
      const q = decodeGet(req, limits);
      const r = await store.get(q.namespace, q.key, q.consistency);
      return { header: { revision: r.revision }, found: r.item !== undefined, item: r.item && itemToPb(r.item) };
    }),
    compareAndSet: unary("CompareAndSet", env, async (req, ctx) => {
      const cmd = decodeCompareAndSet(req, limits);
      return writeReply(await store.write(cmd, writeOptions(ctx)));
    }),
    delete: unary("Delete", env, async (req, ctx) => {
      const cmd = decodeDelete(req, limits);
      return writeReply(await store.write(cmd, writeOptions(ctx)));
    }),
    list: unary("List", env, async (req) => {
      const q = decodeList(req, limits);
      const r = await store.list(q);
      // Keep a page within the message limit: values can make 1000 items far too big.
      let bytes = 0;
      let n = 0;
      for (const it of r.items) {
        bytes += it.value.length + Buffer.byteLength(it.key) + 128;
        if (n > 0 && bytes > limits.maxMessageBytes - 64 * 1024) break;
        n++;
      }
      const items = r.items.slice(0, n);
      const more = r.more || n < r.items.length;
      const last = items[items.length - 1];
      return {
        header: { revision: r.revision },
        items: items.map(itemToPb),
        nextPageToken: more && last ? encodePageToken(q.namespace, q.prefix, last.key) : "",
      };
    }),
  };
}
