/**
 * gRPC handlers for agentstate.v1.CheckpointService. Each is: decode and
 * validate the request (codec.ts), call the CheckpointStore, shape the reply
 * (what it throws is mapped by the call pipeline). Checkpoints take no
 * namespace revision (see the service's comment in checkpoint.proto), so the
 * replies carry no ResponseHeader. PutCheckpoint, PutWrites and GetCheckpoint
 * run the same handler whether they come as unary calls or as calls of a
 * Session stream (pipeline/session.ts).
 */
import {
  checkpointReplyLimit,
  checkpointTooLarge,
  type CheckpointStore,
  type StoredCheckpoint,
} from "../../domain/checkpoints";
import type { Limits } from "../../domain/limits";
import type {
  CheckpointServiceServer,
  GetCheckpointRequest,
  GetCheckpointResponse,
  PutCheckpointRequest,
  PutCheckpointResponse,
  PutWritesRequest,
  PutWritesResponse,
  SessionRequest,
  SessionResponse,
} from "../../gen/agentstate/v1/checkpoint";
import { StreamSlots } from "../../domain/streamSlots";
import { InvalidArgumentError } from "../../errors/errors";
import { writeOptions, type CallContext, type CallEnv } from "../pipeline/context";
import { session, type SessionRoute } from "../pipeline/session";
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

type Handler<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res>;

/** A session route for one RPC: `handler` as its unary call runs it, the reply under `key`. */
function route<Req, Res>(
  rpc: string,
  handler: Handler<Req, Res>,
  key: "putCheckpoint" | "putWrites" | "getCheckpoint",
): SessionRoute<SessionResponse> {
  return {
    rpc,
    handler: handler as SessionRoute<SessionResponse>["handler"],
    reply: (callId, res) => ({ callId, [key]: res }) as SessionResponse,
  };
}

const SESSION_KEYS = ["putCheckpoint", "putWrites", "getCheckpoint"] as const;
const SESSION_CALLS = "put_checkpoint, put_writes, get_checkpoint";

export function checkpointHandlers(store: CheckpointStore, limits: Limits, env: CallEnv): CheckpointServiceServer {
  const putCheckpoint: Handler<PutCheckpointRequest, PutCheckpointResponse> = async (req, ctx) => {
    const r = await store.put(decodePutCheckpoint(req, limits), writeOptions(ctx).actor);
    return { created: r.created, headCheckpointId: r.head };
  };
  const putWrites: Handler<PutWritesRequest, PutWritesResponse> = async (req, ctx) => ({
    stored: await store.putWrites(decodePutWrites(req, limits), writeOptions(ctx).actor),
  });
  const getCheckpoint: Handler<GetCheckpointRequest, GetCheckpointResponse> = async (req) => {
    const page = fitReply(await store.list(decodeGetCheckpoint(req, limits)), limits);
    const c = page[0];
    return { found: c !== undefined, checkpoint: c && checkpointToPb(c) };
  };
  const routes = {
    putCheckpoint: route("PutCheckpoint", putCheckpoint, "putCheckpoint"),
    putWrites: route("PutWrites", putWrites, "putWrites"),
    getCheckpoint: route("GetCheckpoint", getCheckpoint, "getCheckpoint"),
  };
  const sessions = new StreamSlots({
    what: "Session streams",
    perServer: limits.maxSessions,
    perServerSetting: "AGENTSTATE_MAX_SESSIONS",
  });
  return {
    putCheckpoint: unary("PutCheckpoint", env, putCheckpoint),
    putWrites: unary("PutWrites", env, putWrites),
    getCheckpoint: unary("GetCheckpoint", env, getCheckpoint),
    session: session<SessionRequest, SessionResponse>(env, {
      rpc: "Session",
      maxCalls: limits.maxSessionCalls,
      maxCallsSetting: "AGENTSTATE_MAX_SESSION_CALLS",
      slots: sessions,
      route: (req) => {
        let carried: keyof typeof routes | undefined;
        let n = 0;
        for (const k of SESSION_KEYS) {
          if (req[k] !== undefined) {
            carried = k;
            n++;
          }
        }
        if (n !== 1 || carried === undefined) {
          return new InvalidArgumentError("call", `a session call carries exactly one of ${SESSION_CALLS}`);
        }
        return { route: routes[carried], request: req[carried] };
      },
      statusReply: (callId, status) => ({ callId, status }),
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
