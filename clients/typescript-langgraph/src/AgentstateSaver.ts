/**
 * AgentstateSaver: a LangGraph checkpointer (BaseCheckpointSaver) on
 * agentstate's CheckpointService.
 *
 * What it stores, per put: the checkpoint document without its channel
 * values, the metadata (a JSON object the server can filter on), and only the
 * channel values whose versions are new (`newVersions`); the server keeps each
 * (thread, checkpoint ns, channel, version) once and hands every checkpoint
 * the values of the versions it references. Values are serialized with the
 * saver's serde (LangGraph's JsonPlusSerializer by default) and carried with
 * its type tag; the server never reads them.
 *
 * Strict mode (on by default): a put is refused with CheckpointConflictError
 * unless its parent (the config's checkpoint_id) is still the thread's latest
 * checkpoint in its checkpoint namespace, so two workers on one thread never
 * fork it silently. A deliberate fork (time travel) passes
 * `configurable.agentstate_fork: true`, or uses a saver with `strict: false`.
 *
 * Deltas: the saver keeps the last value it put per (thread, checkpoint ns,
 * channel), up to `deltaCacheBytes`, and sends the channel's next version as a
 * delta of it when that pays (a value of at least 256 bytes, a delta under
 * half of it, at most `deltaDepth` deltas after a whole value): a growing
 * message list costs its growth per step on the wire, not its size. A put
 * the server refuses for the delta's base (CHECKPOINT_DELTA_BASE: pruned,
 * deleted, written by another worker) is sent again whole, once.
 */
import {
  CheckpointDeltas,
  type AgentstateClient,
  type Checkpoint as PbCheckpoint,
  type DeltaPlan,
} from "@agentstate/client";
import type { RunnableConfig } from "@langchain/core/runnables";
import {
  BaseCheckpointSaver,
  maxChannelVersion,
  TASKS,
  WRITES_IDX_MAP,
  type ChannelVersions,
  type Checkpoint,
  type CheckpointListOptions,
  type CheckpointMetadata,
  type CheckpointPendingWrite,
  type CheckpointTuple,
  type PendingWrite,
  type SerializerProtocol,
} from "@langchain/langgraph-checkpoint";
import { CheckpointConflictError, CheckpointInputError } from "./errors";

export interface AgentstateSaverOptions {
  /** An agentstate client (address, TLS, interceptors such as auth come with it). */
  client: AgentstateClient;
  /** The agentstate namespace the checkpoints live in: `[a-z0-9][a-z0-9._-]{0,62}`. */
  namespace: string;
  /** Refuse a put whose parent is not the thread's latest checkpoint (default true). */
  strict?: boolean;
  /** Serializer; default LangGraph's JsonPlusSerializer. */
  serde?: SerializerProtocol;
  /** Checkpoints per ListCheckpoints call while listing (default 100). */
  pageSize?: number;
  /**
   * Bytes of last channel values kept to send the next versions as deltas
   * (default 32 MiB; 0: every value is sent whole). A value over 1/64 of it is
   * not kept.
   */
  deltaCacheBytes?: number;
  /** Most deltas sent after a value sent whole (default 32, the server's AGENTSTATE_CHECKPOINT_DELTA_CHAIN). */
  deltaDepth?: number;
}

// gRPC status codes (numbers, as every gRPC library has them).
const INVALID_ARGUMENT = 3;
const RESOURCE_EXHAUSTED = 8;
const ABORTED = 10;

interface GrpcError {
  code: number;
  details?: string;
  metadata?: { get(key: string): unknown[] };
}

const isGrpcError = (e: unknown): e is GrpcError =>
  typeof e === "object" && e !== null && typeof (e as { code?: unknown }).code === "number";

const EMPTY = Buffer.alloc(0);
/** The generated messages type bytes as Buffer: wrap serde's Uint8Array without a copy. */
const buf = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const decoder = new TextDecoder();

/** A thread id, checkpoint ns or checkpoint id from a config: a string (a number is taken as its text). */
function name(field: string, v: unknown, required: boolean): string {
  if (v === undefined || v === null || v === "") {
    if (required) throw new CheckpointInputError(field, `missing "configurable.${field}" in the config`);
    return "";
  }
  if (typeof v !== "string" && typeof v !== "number") {
    throw new CheckpointInputError(field, `"configurable.${field}" must be a string, not ${typeof v}`);
  }
  return String(v);
}

/** The config's configurable, with thread_id required; throws CheckpointInputError naming what is missing or of the wrong type. */
function address(config: RunnableConfig, needCheckpointId = false) {
  const c = (config as RunnableConfig | undefined)?.configurable;
  if (c === undefined || c === null || typeof c !== "object") {
    throw new CheckpointInputError("configurable", 'missing "configurable" in the config');
  }
  return {
    threadId: name("thread_id", c.thread_id, true),
    checkpointNs: name("checkpoint_ns", c.checkpoint_ns, false),
    checkpointId: name("checkpoint_id", c.checkpoint_id, needCheckpointId),
  };
}

export class AgentstateSaver extends BaseCheckpointSaver<string> {
  readonly client: AgentstateClient;
  readonly namespace: string;
  readonly strict: boolean;
  /** The last values put, and counters of the values sent as deltas, whole, and put again whole. */
  readonly deltas: CheckpointDeltas;
  private readonly pageSize: number;

  constructor(options: AgentstateSaverOptions) {
    super(options.serde);
    this.client = options.client;
    this.namespace = options.namespace;
    this.strict = options.strict ?? true;
    this.pageSize = options.pageSize ?? 100;
    this.deltas = new CheckpointDeltas({ maxBytes: options.deltaCacheBytes, maxDepth: options.deltaDepth });
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    if (config.configurable?.thread_id === undefined) return undefined;
    const a = address(config);
    const r = await this.call(a, () =>
      this.client.getCheckpoint({
        namespace: this.namespace,
        threadId: a.threadId,
        checkpointNs: a.checkpointNs,
        checkpointId: a.checkpointId,
      }),
    );
    return r.found && r.checkpoint ? this.toTuple(r.checkpoint) : undefined;
  }

  async *list(config: RunnableConfig, options: CheckpointListOptions = {}): AsyncGenerator<CheckpointTuple> {
    const { limit, before, filter } = options;
    const c = config.configurable ?? {};
    const filterJson = filter && Object.keys(filter).length > 0 ? JSON.stringify(filter) : "";
    let remaining = limit;
    let pageToken = "";
    do {
      const pageLimit = Math.min(remaining ?? this.pageSize, this.pageSize);
      if (pageLimit <= 0) return;
      const r = await this.call(undefined, () =>
        this.client.listCheckpoints({
          namespace: this.namespace,
          threadId: c.thread_id === undefined ? "" : String(c.thread_id),
          checkpointNs: c.checkpoint_ns === undefined ? undefined : String(c.checkpoint_ns),
          checkpointId: c.checkpoint_id === undefined ? "" : String(c.checkpoint_id),
          beforeCheckpointId:
            before?.configurable?.checkpoint_id === undefined ? "" : String(before.configurable.checkpoint_id),
          metadataFilterJson: Buffer.from(filterJson),
          limit: pageLimit,
          pageToken,
        }),
      );
      for (const cp of r.checkpoints) {
        yield await this.toTuple(cp);
        if (remaining !== undefined && --remaining <= 0) return;
      }
      pageToken = r.nextPageToken;
    } while (pageToken !== "");
  }

  async put(
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    newVersions: ChannelVersions,
  ): Promise<RunnableConfig> {
    const a = address(config);
    if (typeof checkpoint?.id !== "string") {
      throw new CheckpointInputError("checkpoint_id", 'the checkpoint must have a string "id"');
    }
    if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
      throw new CheckpointInputError("metadata_json", "metadata must be an object");
    }
    const { channel_values: values, ...document } = checkpoint;
    const channelVersions: Record<string, string> = {};
    for (const [channel, v] of Object.entries(checkpoint.channel_versions)) channelVersions[channel] = String(v);
    const newValues = await Promise.all(
      Object.entries(newVersions)
        // Only versions the checkpoint references are ever read back.
        .filter(([channel, v]) => channelVersions[channel] === String(v))
        .map(async ([channel, v]) => {
          const [type, data] =
            channel in values ? await this.serde.dumpsTyped(values[channel]) : (["empty", EMPTY] as const);
          return { channel, version: String(v), value: { type, data: buf(data) } };
        }),
    );
    const [docType, docData] = await this.serde.dumpsTyped(document);
    const [, metadataJson] = await this.serde.dumpsTyped(metadata);
    const fork = config.configurable?.agentstate_fork === true;
    const thread = { namespace: this.namespace, threadId: a.threadId, checkpointNs: a.checkpointNs };
    const send = async (plan: DeltaPlan) => {
      await this.client.putCheckpoint({
        namespace: this.namespace,
        threadId: a.threadId,
        checkpointNs: a.checkpointNs,
        checkpointId: checkpoint.id,
        parentCheckpointId: a.checkpointId,
        document: { type: docType, data: buf(docData) },
        metadataJson: buf(metadataJson),
        channelVersions,
        values: plan.values,
        requireParentIsHead: this.strict && !fork,
      });
    };
    await this.call(a, () => this.deltas.put(thread, newValues, send));
    return { configurable: { thread_id: a.threadId, checkpoint_ns: a.checkpointNs, checkpoint_id: checkpoint.id } };
  }

  async putWrites(config: RunnableConfig, writes: PendingWrite[], taskId: string, taskPath = ""): Promise<void> {
    const a = address(config, true);
    if (typeof taskId !== "string" || typeof taskPath !== "string") {
      throw new CheckpointInputError("task_id", "taskId and taskPath must be strings");
    }
    if (
      !Array.isArray(writes) ||
      !writes.every((w) => Array.isArray(w) && w.length === 2 && typeof w[0] === "string")
    ) {
      throw new CheckpointInputError("writes", "writes must be [channel, value] pairs with a string channel");
    }
    if (writes.length === 0) return;
    const values = await Promise.all(
      writes.map(async ([channel, value], idx) => {
        const [type, data] = await this.serde.dumpsTyped(value);
        return { index: WRITES_IDX_MAP[channel] ?? idx, channel, value: { type, data: buf(data) } };
      }),
    );
    await this.call(a, "writes", () =>
      this.client.putWrites({
        namespace: this.namespace,
        threadId: a.threadId,
        checkpointNs: a.checkpointNs,
        checkpointId: a.checkpointId,
        taskId,
        taskPath,
        writes: values,
      }),
    );
  }

  async deleteThread(threadId: string): Promise<void> {
    this.deltas.forgetThread(this.namespace, threadId);
    await this.call(undefined, () => this.client.deleteThread({ namespace: this.namespace, threadId }));
  }

  /** Copies every checkpoint, value and pending write of a thread to another thread. */
  async copyThread(sourceThreadId: string, targetThreadId: string): Promise<void> {
    await this.call(undefined, () =>
      this.client.copyThread({ namespace: this.namespace, sourceThreadId, targetThreadId }),
    );
  }

  /** Keeps the latest checkpoint of each checkpoint namespace of the threads ("keep_latest"), or none ("delete"). */
  async prune(threadIds: string[], strategy: "keep_latest" | "delete" = "keep_latest"): Promise<void> {
    await this.call(undefined, () =>
      this.client.pruneCheckpoints({
        namespace: this.namespace,
        threadIds,
        keepLatest: strategy === "keep_latest" ? 1 : 0,
      }),
    );
  }

  /** Removes the checkpoints whose metadata.run_id is among runIds, with their pending writes. */
  async deleteForRuns(runIds: string[]): Promise<void> {
    await this.call(undefined, () => this.client.deleteForRuns({ namespace: this.namespace, runIds }));
  }

  /** Versions as PostgresSaver makes them: a zero-padded counter and a random suffix, so they sort as strings. */
  override getNextVersion(current: string | undefined): string {
    const n =
      current === undefined ? 0 : typeof current === "number" ? current : Number.parseInt(current.split(".")[0]!, 10);
    return `${String(n + 1).padStart(32, "0")}.${String(Math.random()).padStart(16, "0")}`;
  }

  private async toTuple(c: PbCheckpoint): Promise<CheckpointTuple> {
    const document = (await this.serde.loadsTyped(c.document!.type, c.document!.data)) as Checkpoint;
    const channelValues: Record<string, unknown> = {};
    for (const v of c.values) {
      if (v.value && v.value.type !== "empty")
        channelValues[v.channel] = await this.serde.loadsTyped(v.value.type, v.value.data);
    }
    const checkpoint: Checkpoint = { ...document, channel_values: channelValues };
    if (checkpoint.v < 4 && c.parentCheckpointId !== "") await this.migratePendingSends(c, checkpoint);
    const pendingWrites: CheckpointPendingWrite[] = await Promise.all(
      c.pendingWrites.map(
        async (w) =>
          [w.taskId, w.channel, await this.serde.loadsTyped(w.value!.type, w.value!.data)] as CheckpointPendingWrite,
      ),
    );
    const at = (checkpointId: string) => ({
      configurable: { thread_id: c.threadId, checkpoint_ns: c.checkpointNs, checkpoint_id: checkpointId },
    });
    return {
      config: at(c.checkpointId),
      checkpoint,
      metadata: (await this.serde.loadsTyped("json", decoder.decode(c.metadataJson))) as CheckpointMetadata,
      parentConfig: c.parentCheckpointId === "" ? undefined : at(c.parentCheckpointId),
      pendingWrites,
    };
  }

  /** Checkpoints before format 4 kept sends as the parent's TASKS writes: fold them into channel_values. */
  private async migratePendingSends(c: PbCheckpoint, checkpoint: Checkpoint): Promise<void> {
    const parent = await this.call(undefined, () =>
      this.client.getCheckpoint({
        namespace: this.namespace,
        threadId: c.threadId,
        checkpointNs: c.checkpointNs,
        checkpointId: c.parentCheckpointId,
      }),
    );
    const sends = parent.checkpoint?.pendingWrites.filter((w) => w.channel === TASKS) ?? [];
    if (sends.length === 0) return;
    checkpoint.channel_values[TASKS] = await Promise.all(
      sends.map((w) => this.serde.loadsTyped(w.value!.type, w.value!.data)),
    );
    const versions = Object.values(checkpoint.channel_versions);
    checkpoint.channel_versions[TASKS] =
      versions.length > 0 ? maxChannelVersion(...versions) : this.getNextVersion(undefined);
  }

  /** Runs a call, turning the server's refusals into the saver's documented errors. */
  private async call<T>(
    a: { threadId: string; checkpointNs: string } | undefined,
    fieldOrFn: string | (() => Promise<T>),
    maybeFn?: () => Promise<T>,
  ): Promise<T> {
    // The request field a RESOURCE_EXHAUSTED refusal is about ("request" unless given).
    const field = typeof fieldOrFn === "string" ? fieldOrFn : "request";
    const fn = typeof fieldOrFn === "string" ? maybeFn! : fieldOrFn;
    try {
      return await fn();
    } catch (e) {
      if (!isGrpcError(e)) throw e;
      const meta = (key: string) => {
        const v = e.metadata?.get(key)[0];
        return v === undefined ? undefined : String(v);
      };
      const details = e.details ?? String(e);
      if (e.code === ABORTED && meta("agentstate-reason") === "CHECKPOINT_CONFLICT") {
        throw new CheckpointConflictError(
          meta("agentstate-checkpoint-head") ?? "",
          a?.threadId ?? "",
          a?.checkpointNs ?? "",
          details,
        );
      }
      if (e.code === INVALID_ARGUMENT) {
        throw new CheckpointInputError(meta("agentstate-field") ?? field, details, e);
      }
      // A request over the message limit (grpc-js's own refusal, on either
      // side), or a putWrites that would take its checkpoint past the size one
      // read returns (the server names AGENTSTATE_MAX_APPEND_BYTES).
      if (e.code === RESOURCE_EXHAUSTED) throw new CheckpointInputError(field, details, e);
      throw e;
    }
  }
}
