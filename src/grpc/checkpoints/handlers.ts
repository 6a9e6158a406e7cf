/**
 * gRPC handlers for agentstate.v1.CheckpointService. Each is: decode and
 * validate the request (codec.ts), call the CheckpointStore, shape the reply
 * (what it throws is mapped by the call pipeline). Checkpoints take no
 * namespace revision (see the service's comment in checkpoint.proto), so the
 * replies carry no ResponseHeader.
 */
import {
  checkpointReplyLimit,
  checkpointTooLarge,
  type CheckpointStore,
  type StoredCheckpoint,
} from "../../domain/checkpoints";
import type { Limits } from "../../domain/limits";
import type { CheckpointServiceServer } from "../../gen/agentstate/v1/checkpoint";
import { writeOptions, type CallEnv } from "../pipeline/context";
import { unary } from "../pipeline/unary";
import {
  checkpointBytes,
  checkpointToPb,
  decodeCopyThread,
  decodeDeleteForRuns,
  decodeDeleteThread,
  decodeGetCheckpoint,
  decodeListCheckpoints,
  decodePruneCheckpoints,
  decodePutCheckpoint,
  decodePutWrites,
  encodeCheckpointPageToken,
} from "./codec";

/** The checkpoints of a page that fit in one reply; refuses a first one that alone does not. */
function fitReply(page: StoredCheckpoint[], limits: Limits): StoredCheckpoint[] {
  const budget = checkpointReplyLimit(limits);
  let bytes = 0;
  let n = 0;
  for (const c of page) {
    bytes += checkpointBytes(c);
    if (bytes > budget) break;
    n++;
  }
  if (n === 0 && page.length > 0) throw checkpointTooLarge(page[0]!.checkpointId, bytes, budget, "is");
  return page.slice(0, n);
}

export function checkpointHandlers(store: CheckpointStore, limits: Limits, env: CallEnv): CheckpointServiceServer {
  return {
    putCheckpoint: unary("PutCheckpoint", env, async (req, ctx) => {
      const r = await store.put(decodePutCheckpoint(req, limits), writeOptions(ctx).actor);
      return { created: r.created, headCheckpointId: r.head };
    }),
    putWrites: unary("PutWrites", env, async (req, ctx) => ({
      stored: await store.putWrites(decodePutWrites(req, limits), writeOptions(ctx).actor),
    })),
    getCheckpoint: unary("GetCheckpoint", env, async (req) => {
      const page = fitReply(await store.list(decodeGetCheckpoint(req, limits)), limits);
      const c = page[0];
      return { found: c !== undefined, checkpoint: c && checkpointToPb(c) };
    }),
    listCheckpoints: unary("ListCheckpoints", env, async (req) => {
      const q = decodeListCheckpoints(req, limits);
      const page = await store.list(q);
      const fit = fitReply(page, limits);
      const last = fit[fit.length - 1];
      const more = fit.length < page.length || page.length === q.limit;
      return {
        checkpoints: fit.map(checkpointToPb),
        nextPageToken: more && last ? encodeCheckpointPageToken(q.namespace, last) : "",
      };
    }),
    deleteThread: unary("DeleteThread", env, async (req, ctx) => {
      const r = decodeDeleteThread(req, limits);
      return { checkpointsDeleted: await store.deleteThread(r.namespace, r.threadId, writeOptions(ctx).actor) };
    }),
    copyThread: unary("CopyThread", env, async (req, ctx) => {
      const r = decodeCopyThread(req, limits);
      return { checkpointsCopied: await store.copyThread(r.namespace, r.source, r.target, writeOptions(ctx).actor) };
    }),
    pruneCheckpoints: unary("PruneCheckpoints", env, async (req, ctx) => {
      const r = decodePruneCheckpoints(req, limits);
      return {
        checkpointsDeleted: await store.prune(r.namespace, r.threadIds, r.keepLatest, writeOptions(ctx).actor),
      };
    }),
    deleteForRuns: unary("DeleteForRuns", env, async (req, ctx) => {
      const r = decodeDeleteForRuns(req, limits);
      return { checkpointsDeleted: await store.deleteForRuns(r.namespace, r.runIds, writeOptions(ctx).actor) };
    }),
  };
}
