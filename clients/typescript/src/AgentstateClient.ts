/**
 * AgentstateClient: a small promise-based client for agentstate.v1 over the
 * grpc-js clients that ts-proto generates from proto/ (see ./gen, produced by
 * `npm run gen`). Over the plain RPCs it adds:
 *
 * - requests may be partial (`{ namespace, key }`); missing fields take their
 *   protobuf defaults through the generated `X.fromPartial`;
 * - every call carries a deadline (default 10 s), so no call can hang forever;
 * - the message size limit matches the server's default, so the transport
 *   never refuses what the server would accept or send;
 * - putCheckpoint, putWrites and getCheckpoint go as messages on one
 *   CheckpointService.Session stream (CheckpointSession), with the unary
 *   calls' results and errors at a fraction of their CPU; unary for a server
 *   without Session, or with `checkpointSession: false`;
 *
 * and three helpers for what agents most often get wrong:
 *
 * - `update(namespace, key, fn)`: a compare-and-set retry loop that never
 *   loses an update;
 * - `withLock(namespace, name, fn)`: acquire, renew in the background, hand
 *   `fn` the fencing token for its writes, release; `fn`'s signal aborts if
 *   the lock is lost;
 * - `put(namespace, key, value)`: one idempotency key per logical write,
 *   reused across its retries, so a write retried after a timeout applies once;
 *
 * and for event streams:
 *
 * - `appendEvent(namespace, stream, events, expected)`: event ids generated
 *   once per call (UUIDv4) and re-sent on retries, so a retried append is
 *   applied once and answers the server's replayed outcome;
 * - `readStream(namespace, stream)`: an async iterator over a stream's events;
 * - `subscribe(namespace, target)`: a subscription that resumes from the last
 *   position it delivered when the stream breaks, until closed.
 *
 * Errors are the grpc-js ServiceError as received: `code` (a grpc `status`),
 * `details` (for INVALID_ARGUMENT it names the field and the limit) and the
 * trailing `metadata` (`agentstate-field`, `agentstate-reason`). A
 * compare-and-set mismatch is not an error: it answers `applied: false` with
 * the current item.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { checkServerIdentity } from "node:tls";
import {
  credentials as grpcCredentials,
  makeGenericClientConstructor,
  Metadata,
  status,
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  type Interceptor,
  type ServiceError,
} from "@grpc/grpc-js";
import { backoffDelayMs, sleep, type Backoff } from "./backoff";
import { durationFromMs, durationToMs } from "./duration";
import { isRetryable, LockLostError, LockNotAcquiredError, UpdateConflictError } from "./errors";
import {
  CheckpointServiceClient,
  CheckpointServiceService,
  CopyThreadRequest,
  DeleteForRunsRequest,
  DeleteThreadRequest,
  GetCheckpointRequest,
  ListCheckpointsRequest,
  PruneCheckpointsRequest,
  PutCheckpointRequest,
  PutWritesRequest,
  SessionRequest,
  type CopyThreadResponse,
  type DeleteForRunsResponse,
  type DeleteThreadResponse,
  type GetCheckpointResponse,
  type ListCheckpointsResponse,
  type PruneCheckpointsResponse,
  type PutCheckpointResponse,
  type PutWritesResponse,
} from "./gen/agentstate/v1/checkpoint";
import type { Fence, Item } from "./gen/agentstate/v1/common";
import {
  toDirection,
  toEventData,
  toExpectedStream,
  type AppendOptions,
  type AppendResult,
  type ExpectedVersion,
  type NewEvent,
  type ReadStreamOptions,
} from "./events";
import {
  AppendEventRequest,
  EventServiceClient,
  ReadStreamRequest,
  type AppendEventResponse,
  type ReadStreamResponse,
  type RecordedEvent,
  type SubscribeRequest,
} from "./gen/agentstate/v1/event";
import {
  CompareAndSetRequest,
  DeleteRequest,
  GetRequest,
  KeyValueServiceClient,
  ListRequest,
  type CompareAndSetResponse,
  type Consistency,
  type DeepPartial,
  type DeleteResponse,
  type Expected,
  type GetResponse,
  type ListResponse,
} from "./gen/agentstate/v1/kv";
import {
  LockRequest,
  LockServiceClient,
  RenewLockRequest,
  UnlockRequest,
  type LockResponse,
  type RenewLockResponse,
  type UnlockResponse,
} from "./gen/agentstate/v1/lock";
import {
  DeleteItemRequest,
  GetItemRequest,
  ListPathsRequest,
  PutItemRequest,
  SearchItemsRequest,
  StoreServiceClient,
  type DeleteItemResponse,
  type GetItemResponse,
  type ListPathsResponse,
  type PutItemResponse,
  type SearchItemsResponse,
} from "./gen/agentstate/v1/store";
import { CheckpointSession, type SessionCalls, type SessionDuplex, type SessionMethod } from "./CheckpointSession";
import { reusingSerializer } from "./serialize";
import { Subscription, type SubscribeOptions, type SubscriptionTarget } from "./Subscription";
import { tokenInterceptor, type TokenSource } from "./token";

/**
 * The server's default gRPC message limit: the larger of the value limit
 * (AGENTSTATE_MAX_VALUE_BYTES, 1 MiB) and the append-batch limit
 * (AGENTSTATE_MAX_APPEND_BYTES, 4 MiB), plus 64 KiB of envelope. The server
 * sizes List pages up to this limit, so a client must accept replies that big.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024 + 64 * 1024;

export const DEFAULT_DEADLINE_MS = 10_000;

export interface AgentstateClientOptions {
  /** Deadline of every call unless the call says otherwise. Default 10 000 ms. */
  deadlineMs?: number;
  /** gRPC send and receive message limit; set it to the server's limit. Default DEFAULT_MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  /** TLS from PEM files (see TlsFiles); `credentials` wins when both are given. */
  tls?: TlsFiles;
  /** Channel credentials. Default: `tls` when given, else insecure (plaintext). */
  credentials?: ChannelCredentials;
  /**
   * For a server with AGENTSTATE_AUTH=required: an API token or JWT, or a
   * function returning the current one (called before every call; for
   * refreshable JWTs), sent as `authorization: Bearer ...` on every call.
   */
  token?: TokenSource;
  /** grpc-js client interceptors (auth, tracing), applied to every service. */
  interceptors?: Interceptor[];
  /** Extra grpc-js channel options (keepalive, load balancing, ...). */
  channelOptions?: ChannelOptions;
  /**
   * putCheckpoint, putWrites and getCheckpoint as messages on one
   * CheckpointService.Session stream (CheckpointSession) rather than one
   * unary call each: same results and errors, much less CPU per call. A
   * server without Session is detected and the client falls back to unary.
   * A call given its own `metadata` goes by unary. Default true.
   */
  checkpointSession?: boolean;
  /** A Session stream takes new calls for this long, then the next call opens another. Default 30 000 ms. */
  sessionMaxAgeMs?: number;
  /** Calls in flight on one Session stream (the server's AGENTSTATE_MAX_SESSION_CALLS); more wait. Default 256. */
  sessionMaxCalls?: number;
}

/** PEM files for a TLS connection. */
export interface TlsFiles {
  /** The CA that signed the server's certificate; default the system's CAs. */
  caFile?: string;
  /** Client certificate and key, for a server that requires mTLS (both or neither). */
  certFile?: string;
  keyFile?: string;
}

/** grpc-js channel credentials for TLS (or mTLS) from PEM files. */
export function tlsCredentials(files: TlsFiles): ChannelCredentials {
  return tlsCredentialsFor(files, undefined);
}

/**
 * The TLS server name grpc-js sends when the address is an IP literal. grpc-js
 * (1.14) always sets Node's `servername` to the target's host, and Node 26
 * refuses an IP there (RFC 6066; a deprecation warning, DEP0123, before):
 * every TLS connection to an IP address failed. With this name (a reserved
 * TLD, RFC 2606: no certificate or virtual host carries it) the server's
 * certificate is still checked against the IP itself (tlsCredentialsFor).
 */
export const IP_TARGET_SERVERNAME = "ip-address.invalid";

/** The host of a `host:port` or `[v6]:port` address when it is an IP literal. */
export function ipHost(address: string): string | undefined {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(address) ?? /^([^:]+)(?::\d+)?$/.exec(address);
  const host = m?.[1];
  return host !== undefined && isIP(host) !== 0 ? host : undefined;
}

function tlsCredentialsFor(files: TlsFiles, ip: string | undefined): ChannelCredentials {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new Error("agentstate: tls.certFile and tls.keyFile go together");
  }
  const read = (f: string | undefined) => (f === undefined ? null : readFileSync(f));
  return grpcCredentials.createSsl(
    read(files.caFile),
    read(files.keyFile),
    read(files.certFile),
    ip === undefined ? undefined : { checkServerIdentity: (_name, cert) => checkServerIdentity(ip, cert) },
  );
}

/** Per-call options. */
export interface CallOptions {
  /** Overrides the client's deadline for this call. */
  deadlineMs?: number;
  /** Request metadata, e.g. an `x-request-id` to correlate with the server's log. */
  metadata?: Metadata;
  /** Cancels the call (it then fails with CANCELLED), e.g. `held.signal` inside withLock. */
  signal?: AbortSignal;
}

/** A new value for update(): bytes, or a string stored as UTF-8. */
export type UpdateValue = Uint8Array | string;

/**
 * Computes a key's new value from its current item (undefined when the key
 * does not exist). It may run several times, once per attempt, always on the
 * latest state seen, so it must not have side effects it cannot repeat.
 * Returning undefined aborts the update without writing.
 */
export type UpdateFn = (current: Item | undefined) => UpdateValue | undefined | Promise<UpdateValue | undefined>;

export interface UpdateOptions {
  /** Content type of the new value; default: keep the current item's. */
  contentType?: string;
  /** Time to live of the written value; default none (the value never expires). */
  ttlMs?: number;
  /** Fence every write with a lock acquisition (`held.fence` inside withLock). */
  fence?: Fence;
  /** Compare-and-set attempts before UpdateConflictError. Default 100. */
  maxAttempts?: number;
  /** Backoff between conflicting attempts. Default 10 ms doubling up to 1 s, full jitter. */
  backoff?: Backoff;
  /** Consistency of the first read. Later attempts use the item the failed CAS returned. */
  consistency?: Consistency;
  /** Per-call deadline (each call gets its own). */
  deadlineMs?: number;
  /** Stops the loop (and the call in flight). */
  signal?: AbortSignal;
}

export interface UpdateResult {
  /** False only when `fn` returned undefined (aborted). */
  applied: boolean;
  /** The written item; when aborted, the current one (undefined: absent). */
  item: Item | undefined;
  /** Revision of the write, or of the state `fn` last saw when aborted. */
  revision: number;
  /** Compare-and-set attempts made (0 when aborted at once). */
  attempts: number;
}

export interface PutOptions {
  /** The condition; default `{ any: true }` (unconditional). */
  expected?: DeepPartial<Expected>;
  contentType?: string;
  /** Time to live; default none. */
  ttlMs?: number;
  /** Fence the write with a lock acquisition (`held.fence` inside withLock). */
  fence?: Fence;
  /** The logical write's key; default a fresh random one. Pass your own to stay idempotent across restarts. */
  idempotencyKey?: string;
  /** Retries after UNAVAILABLE or DEADLINE_EXCEEDED, with the same key. Default 3. */
  retries?: number;
  /** Backoff between retries. Default 100 ms doubling up to 2 s, full jitter. */
  backoff?: Backoff;
  /** Deadline of each attempt. */
  deadlineMs?: number;
  signal?: AbortSignal;
}

export interface WithLockOptions {
  /** Lock TTL between renewals. Default 15 000 ms. */
  ttlMs?: number;
  /** How long to wait for the lock; 0 tries once. Default 30 000 ms. */
  waitMs?: number;
  /** Describes the holder to other waiters, e.g. "worker-3". */
  owner?: string;
  /** Renewal period. Default ttlMs / 3. */
  renewEveryMs?: number;
  /** Aborts the wait and, once held, `fn`'s signal. */
  signal?: AbortSignal;
}

/** What withLock hands to `fn`. */
export interface HeldLock {
  namespace: string;
  name: string;
  /** Proves holdership to unlock and renewLock. */
  lockId: string;
  /** The fencing token: greater than every token issued before for this name. */
  token: number;
  /** Pass with every write made under the lock (in its namespace); refused once a newer holder exists. */
  fence: Fence;
  /** Aborted (with a LockLostError) if the lock cannot be renewed: stop working then. */
  signal: AbortSignal;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** The generated checkpoint client, with the write calls serialized by one reused writer (serialize.ts). */
const CheckpointClient = makeGenericClientConstructor(
  {
    ...CheckpointServiceService,
    putCheckpoint: {
      ...CheckpointServiceService.putCheckpoint,
      requestSerialize: reusingSerializer(PutCheckpointRequest),
    },
    putWrites: { ...CheckpointServiceService.putWrites, requestSerialize: reusingSerializer(PutWritesRequest) },
    // CheckpointSession writes its requests encoded (it checks their size first);
    // a SessionRequest written by a user of `checkpoints` is encoded here.
    session: {
      ...CheckpointServiceService.session,
      requestSerialize: (m: Uint8Array | SessionRequest): Buffer =>
        m instanceof Uint8Array ? (m as Buffer) : CheckpointServiceService.session.requestSerialize(m),
    },
  },
  "agentstate.v1.CheckpointService",
) as unknown as typeof CheckpointServiceClient;

/** The generated client's session(), whose requests go out encoded (see CheckpointClient). */
interface SessionOpener {
  session(metadata: Metadata, options: Partial<GrpcCallOptions>): SessionDuplex;
}

const UPDATE_BACKOFF: Backoff = { initialMs: 10, maxMs: 1000 };
const RETRY_BACKOFF: Backoff = { initialMs: 100, maxMs: 2000 };
/** Transient failures (UNAVAILABLE, DEADLINE_EXCEEDED) retried inside update(), with the same idempotency key. */
const UPDATE_TRANSIENT_RETRIES = 3;

function toBuffer(v: UpdateValue): Buffer {
  if (typeof v === "string") return Buffer.from(v, "utf8");
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export class AgentstateClient {
  /** The generated key-value client, for anything this wrapper does not cover (no default deadline). */
  readonly kv: KeyValueServiceClient;
  /** The generated lock client, on the same channel. */
  readonly locks: LockServiceClient;
  /** The generated event client, on the same channel. */
  readonly events: EventServiceClient;
  /** The generated store (JSON items) client, on the same channel. */
  readonly store: StoreServiceClient;
  /** The generated checkpoint client (LangGraph savers), on the same channel. */
  readonly checkpoints: CheckpointServiceClient;
  private readonly deadlineMs: number;
  private readonly subscriptions = new Set<Subscription>();
  /** The Session stream putCheckpoint, putWrites and getCheckpoint go on (undefined: off). */
  private readonly session: CheckpointSession | undefined;

  constructor(
    readonly address: string,
    options: AgentstateClientOptions = {},
  ) {
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    // TLS to an IP address: a server name grpc-js may send on Node 26, and the certificate checked against the IP.
    const ip =
      options.credentials === undefined &&
      options.tls !== undefined &&
      options.channelOptions?.["grpc.ssl_target_name_override"] === undefined
        ? ipHost(address)
        : undefined;
    const creds =
      options.credentials ?? (options.tls ? tlsCredentialsFor(options.tls, ip) : grpcCredentials.createInsecure());
    const interceptors = [
      ...(options.token !== undefined ? [tokenInterceptor(options.token)] : []),
      ...(options.interceptors ?? []),
    ];
    this.kv = new KeyValueServiceClient(address, creds, {
      ...options.channelOptions,
      ...(ip === undefined ? {} : { "grpc.ssl_target_name_override": IP_TARGET_SERVERNAME }),
      "grpc.max_send_message_length": maxMessageBytes,
      "grpc.max_receive_message_length": maxMessageBytes,
      interceptors,
    });
    const channelOverride = this.kv.getChannel();
    this.locks = new LockServiceClient(address, creds, { channelOverride, interceptors });
    this.events = new EventServiceClient(address, creds, { channelOverride, interceptors });
    this.store = new StoreServiceClient(address, creds, { channelOverride, interceptors });
    this.checkpoints = new CheckpointClient(address, creds, { channelOverride, interceptors });
    this.session =
      options.checkpointSession === false
        ? undefined
        : new CheckpointSession({
            open: () => (this.checkpoints as unknown as SessionOpener).session(new Metadata(), {}),
            unary: (method, request, callOptions) => this.checkpointUnary(method, request, callOptions),
            deadlineMs: this.deadlineMs,
            encode: reusingSerializer(SessionRequest),
            maxSendBytes: maxMessageBytes,
            maxAgeMs: options.sessionMaxAgeMs,
            maxCalls: options.sessionMaxCalls,
          });
  }

  /** Creates or replaces a store item (a JSON object under a path and key). */
  putItem(request: DeepPartial<PutItemRequest>, options?: CallOptions): Promise<PutItemResponse> {
    return this.unary(this.store, this.store.putItem, PutItemRequest.fromPartial(request), options);
  }

  /** Reads a store item; missing or expired answers `found: false`. `refreshTtl` restarts its TTL. */
  getItem(request: DeepPartial<GetItemRequest>, options?: CallOptions): Promise<GetItemResponse> {
    return this.unary(this.store, this.store.getItem, GetItemRequest.fromPartial(request), options);
  }

  /** Removes a store item; `deleted` says whether a live one was there. */
  deleteItem(request: DeepPartial<DeleteItemRequest>, options?: CallOptions): Promise<DeleteItemResponse> {
    return this.unary(this.store, this.store.deleteItem, DeleteItemRequest.fromPartial(request), options);
  }

  /** One page of the store items under a path prefix matching a JSON filter, most recently updated first. */
  searchItems(request: DeepPartial<SearchItemsRequest>, options?: CallOptions): Promise<SearchItemsResponse> {
    return this.unary(this.store, this.store.searchItems, SearchItemsRequest.fromPartial(request), options);
  }

  /** One page of the distinct paths holding store items (LangGraph's list_namespaces). */
  listPaths(request: DeepPartial<ListPathsRequest>, options?: CallOptions): Promise<ListPathsResponse> {
    return this.unary(this.store, this.store.listPaths, ListPathsRequest.fromPartial(request), options);
  }

  /** Reads one key. A missing or expired key answers `found: false`. */
  get(request: DeepPartial<GetRequest>, options?: CallOptions): Promise<GetResponse> {
    return this.unary(this.kv, this.kv.get, GetRequest.fromPartial(request), options);
  }

  /** Writes a key if `request.expected` holds; a mismatch answers `applied: false` with the current item. */
  compareAndSet(request: DeepPartial<CompareAndSetRequest>, options?: CallOptions): Promise<CompareAndSetResponse> {
    return this.unary(this.kv, this.kv.compareAndSet, CompareAndSetRequest.fromPartial(request), options);
  }

  /** Removes a key if `request.expected` holds, with the same compare semantics. */
  delete(request: DeepPartial<DeleteRequest>, options?: CallOptions): Promise<DeleteResponse> {
    return this.unary(this.kv, this.kv.delete, DeleteRequest.fromPartial(request), options);
  }

  /** One page of keys under a prefix, in byte order; pass `next_page_token` back for the next page. */
  list(request: DeepPartial<ListRequest>, options?: CallOptions): Promise<ListResponse> {
    return this.unary(this.kv, this.kv.list, ListRequest.fromPartial(request), options);
  }

  /**
   * Tries to acquire a lock, waiting up to `request.wait`. Not acquired in
   * time is not an error: `acquired: false` with the holder's owner when
   * known. The default deadline is the wait plus the client's deadline.
   */
  lock(request: DeepPartial<LockRequest>, options: CallOptions = {}): Promise<LockResponse> {
    const req = LockRequest.fromPartial(request);
    const deadlineMs = options.deadlineMs ?? this.deadlineMs + durationToMs(req.wait);
    return this.unary(this.locks, this.locks.lock, req, { ...options, deadlineMs });
  }

  /** Releases a lock held under `request.lockId`; not held answers FAILED_PRECONDITION (reason LOCK_NOT_HELD). */
  unlock(request: DeepPartial<UnlockRequest>, options?: CallOptions): Promise<UnlockResponse> {
    return this.unary(this.locks, this.locks.unlock, UnlockRequest.fromPartial(request), options);
  }

  /** Extends a lock held under `request.lockId` to `request.ttl` from now. */
  renewLock(request: DeepPartial<RenewLockRequest>, options?: CallOptions): Promise<RenewLockResponse> {
    return this.unary(this.locks, this.locks.renewLock, RenewLockRequest.fromPartial(request), options);
  }

  /**
   * Appends `events` to a stream atomically if `expected` holds (`"any"`,
   * `"no_stream"`, `"exists"` or the stream's current version). A mismatch is
   * not an error: `applied: false` with the stream's `currentVersion`.
   *
   * Each event without an id gets a UUIDv4 here, once per call, and the very
   * same request is retried after UNAVAILABLE or DEADLINE_EXCEEDED. The server
   * appends an id at most once, so an append whose reply was lost is replayed
   * (`replayed: true`, the original positions) instead of written twice.
   * `eventIds` are the ids sent, in order.
   */
  async appendEvent(
    namespace: string,
    stream: string,
    events: readonly NewEvent[],
    expected: ExpectedVersion,
    opts: AppendOptions = {},
  ): Promise<AppendResult> {
    const request = AppendEventRequest.fromPartial({
      namespace,
      stream,
      expected: toExpectedStream(expected),
      events: toEventData(events),
      fence: opts.fence,
    });
    const call: CallOptions = { deadlineMs: opts.deadlineMs, signal: opts.signal, metadata: opts.metadata };
    const res = await this.retryTransient(
      () => this.unary<AppendEventRequest, AppendEventResponse>(this.events, this.events.appendEvent, request, call),
      opts.retries ?? 3,
      opts.backoff ?? RETRY_BACKOFF,
      opts.signal,
    );
    return { ...res, eventIds: request.events.map((e) => e.id) };
  }

  /**
   * Reads a stream's events, oldest first unless `direction: "backwards"`
   * (newest first), from `fromVersion` (inclusive; default the start, or the
   * end backwards), at most `limit` (default all). The server pages from
   * Postgres and waits for the reader, so a long stream never sits in memory;
   * a reader that stops for longer than the server's stall limit gets
   * RESOURCE_EXHAUSTED. A stream without events fails with NOT_FOUND. The
   * whole read has one deadline (`deadlineMs`, default the client's);
   * leaving the loop early cancels the call.
   *
   *     for await (const e of client.readStream("demo", "cart-42")) console.log(e.streamVersion, e.type);
   */
  async *readStream(
    namespace: string,
    stream: string,
    opts: ReadStreamOptions = {},
  ): AsyncGenerator<RecordedEvent, void, undefined> {
    const request = ReadStreamRequest.fromPartial({
      namespace,
      stream,
      direction: toDirection(opts.direction),
      fromVersion: opts.fromVersion ?? 0,
      limit: opts.limit ?? 0,
    });
    const signal = opts.signal;
    signal?.throwIfAborted();
    const deadline = new Date(Date.now() + (opts.deadlineMs ?? this.deadlineMs));
    const call = this.events.readStream(request, opts.metadata ?? new Metadata(), { deadline });
    // grpc-js emits 'error' after a cancel too: never leave it unheard.
    call.on("error", () => undefined);
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const res of call as AsyncIterable<ReadStreamResponse>) {
        if (res.event) yield res.event;
      }
    } catch (err) {
      throw signal?.aborted ? signal.reason : err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      call.cancel();
    }
  }

  /**
   * Subscribes to one stream (`{ stream }`) or to every stream under a prefix
   * (`{ streamPrefix }`): events with a position above `afterPosition` (catch
   * up), one `caughtUp`, then live events, in position order. The returned
   * Subscription is an async iterable that resubscribes from the last
   * position it delivered when the stream breaks (server shutdown, connection
   * loss, RESOURCE_EXHAUSTED after a stall), after a jittered backoff, so it
   * never skips or repeats an event, until `close()`, `opts.signal` or
   * leaving the loop. It has no deadline. It shares the client's channel:
   * HTTP/2 flow control holds back only its own stream while the consumer
   * is not reading, never the client's other calls.
   */
  subscribe(namespace: string, target: SubscriptionTarget, opts: SubscribeOptions = {}): Subscription {
    // Tracked while iterated, so that close() can end it.
    const sub: Subscription = new Subscription(
      () => {
        this.subscriptions.add(sub);
        return {
          open: (request: SubscribeRequest, metadata: Metadata | undefined) =>
            this.events.subscribe(request, metadata ?? new Metadata(), {}),
          close: () => this.subscriptions.delete(sub),
        };
      },
      namespace,
      target,
      opts,
    );
    return sub;
  }

  /**
   * Applies `fn` to a key atomically. Reads the key, writes `fn(current)` with
   * compare-and-set on the version read (or on absence), and when another
   * writer got there first calls `fn` again on the current item the failed
   * compare-and-set returned (no second read), after a jittered exponential
   * backoff. So no update is lost or applied to a stale value. Each attempt
   * carries its own idempotency key, so an attempt whose reply was lost
   * (UNAVAILABLE, DEADLINE_EXCEEDED) is retried as the same request and
   * applies at most once. Throws UpdateConflictError after `maxAttempts`.
   */
  async update(namespace: string, key: string, fn: UpdateFn, opts: UpdateOptions = {}): Promise<UpdateResult> {
    const call: CallOptions = { deadlineMs: opts.deadlineMs, signal: opts.signal };
    const maxAttempts = opts.maxAttempts ?? 100;
    const got = await this.retryTransient(
      () => this.get({ namespace, key, consistency: opts.consistency }, call),
      UPDATE_TRANSIENT_RETRIES,
      RETRY_BACKOFF,
      opts.signal,
    );
    let current = got.found ? got.item : undefined;
    let revision = got.header?.revision ?? 0;
    for (let attempt = 1; ; attempt++) {
      const value = await fn(current);
      if (value === undefined) return { applied: false, item: current, revision, attempts: attempt - 1 };
      const request: DeepPartial<CompareAndSetRequest> = {
        namespace,
        key,
        expected: current ? { version: current.version } : { absent: true },
        value: toBuffer(value),
        contentType: opts.contentType ?? current?.contentType ?? "",
        ttl: opts.ttlMs === undefined ? undefined : durationFromMs(opts.ttlMs),
        fence: opts.fence,
        idempotencyKey: randomUUID(),
      };
      const res = await this.retryTransient(
        () => this.compareAndSet(request, call),
        UPDATE_TRANSIENT_RETRIES,
        RETRY_BACKOFF,
        opts.signal,
      );
      if (res.applied) return { applied: true, item: res.item, revision: res.header?.revision ?? 0, attempts: attempt };
      if (attempt >= maxAttempts) throw new UpdateConflictError(namespace, key, attempt);
      // The mismatch reply carries the current state: retry on it directly.
      current = res.found ? res.item : undefined;
      revision = res.header?.revision ?? revision;
      await sleep(backoffDelayMs(opts.backoff ?? UPDATE_BACKOFF, attempt), opts.signal);
    }
  }

  /**
   * Writes `value` (unconditionally unless `opts.expected` says otherwise)
   * under one idempotency key, and retries the very same request after
   * UNAVAILABLE or DEADLINE_EXCEEDED. The server applies a key's request at
   * most once and replays its first outcome to every retry (`replayed: true`),
   * so a write whose reply was lost is neither lost nor doubled.
   */
  put(namespace: string, key: string, value: UpdateValue, opts: PutOptions = {}): Promise<CompareAndSetResponse> {
    const request: DeepPartial<CompareAndSetRequest> = {
      namespace,
      key,
      expected: opts.expected ?? { any: true },
      value: toBuffer(value),
      contentType: opts.contentType ?? "",
      ttl: opts.ttlMs === undefined ? undefined : durationFromMs(opts.ttlMs),
      fence: opts.fence,
      idempotencyKey: opts.idempotencyKey ?? randomUUID(),
    };
    return this.retryTransient(
      () => this.compareAndSet(request, { deadlineMs: opts.deadlineMs, signal: opts.signal }),
      opts.retries ?? 3,
      opts.backoff ?? RETRY_BACKOFF,
      opts.signal,
    );
  }

  /**
   * Runs `fn` while holding a lock. Acquires it (waiting up to `waitMs`, else
   * LockNotAcquiredError), renews it every `renewEveryMs` while `fn` runs, and
   * releases it when `fn` settles, whatever happens. `fn` gets the
   * acquisition: pass `held.fence` with every write it makes, and stop when
   * `held.signal` aborts: that happens if a renewal fails (the lock expired, was
   * released or taken over, or the server stayed unreachable until it would
   * have expired), and withLock then rejects with LockLostError even if `fn`
   * finished.
   */
  async withLock<T>(
    namespace: string,
    name: string,
    fn: (held: HeldLock) => Promise<T> | T,
    opts: WithLockOptions = {},
  ): Promise<T> {
    const ttlMs = opts.ttlMs ?? 15_000;
    const renewEveryMs = opts.renewEveryMs ?? ttlMs / 3;
    // The lock is ours for at most ttl from when we asked for it: a local,
    // conservative bound that needs no clock agreement with the server.
    const sentAt = performance.now();
    const res = await this.lock(
      { namespace, name, ttl: durationFromMs(ttlMs), wait: durationFromMs(opts.waitMs ?? 30_000), owner: opts.owner },
      { signal: opts.signal },
    );
    if (!res.acquired) throw new LockNotAcquiredError(namespace, name, res.holderOwner);

    const lost = new AbortController();
    const signal = opts.signal ? AbortSignal.any([lost.signal, opts.signal]) : lost.signal;
    const held: HeldLock = {
      namespace,
      name,
      lockId: res.lockId,
      token: res.fencingToken,
      fence: { lockName: name, token: res.fencingToken },
      signal,
    };
    const renewer = this.keepRenewed(held, ttlMs, renewEveryMs, sentAt + ttlMs, lost);
    try {
      const result = await fn(held);
      if (lost.signal.aborted) throw lost.signal.reason;
      return result;
    } catch (err) {
      throw lost.signal.aborted ? lost.signal.reason : err;
    } finally {
      await renewer.stop();
      // Best effort: a lock that is not released expires by itself.
      await this.unlock({ namespace, name, lockId: held.lockId }).catch(() => undefined);
    }
  }

  // --- Checkpoints (CheckpointService): calls with the client's deadline; @agentstate/langgraph builds on them.

  // putCheckpoint, putWrites and getCheckpoint go on the Session stream
  // (checkpointSession, default on) unless the call brings its own metadata,
  // which only a call of its own can carry.

  /** Stores a checkpoint; a strict put whose parent is not the head fails with ABORTED (reason CHECKPOINT_CONFLICT). */
  putCheckpoint(request: DeepPartial<PutCheckpointRequest>, options?: CallOptions): Promise<PutCheckpointResponse> {
    return this.checkpointCall("putCheckpoint", PutCheckpointRequest.fromPartial(request), options);
  }

  /** Stores a task's pending writes on a checkpoint (idempotent per task and index). */
  putWrites(request: DeepPartial<PutWritesRequest>, options?: CallOptions): Promise<PutWritesResponse> {
    return this.checkpointCall("putWrites", PutWritesRequest.fromPartial(request), options);
  }

  /** One checkpoint (by id, or the latest), with its channel values and pending writes. */
  getCheckpoint(request: DeepPartial<GetCheckpointRequest>, options?: CallOptions): Promise<GetCheckpointResponse> {
    return this.checkpointCall("getCheckpoint", GetCheckpointRequest.fromPartial(request), options);
  }

  /** One page of checkpoints, newest first. */
  listCheckpoints(
    request: DeepPartial<ListCheckpointsRequest>,
    options?: CallOptions,
  ): Promise<ListCheckpointsResponse> {
    const c = this.checkpoints;
    return this.unary(c, c.listCheckpoints, ListCheckpointsRequest.fromPartial(request), options);
  }

  /** Removes every checkpoint of a thread. */
  deleteThread(request: DeepPartial<DeleteThreadRequest>, options?: CallOptions): Promise<DeleteThreadResponse> {
    const c = this.checkpoints;
    return this.unary(c, c.deleteThread, DeleteThreadRequest.fromPartial(request), options);
  }

  /** Copies a thread's checkpoints to another thread. */
  copyThread(request: DeepPartial<CopyThreadRequest>, options?: CallOptions): Promise<CopyThreadResponse> {
    const c = this.checkpoints;
    return this.unary(c, c.copyThread, CopyThreadRequest.fromPartial(request), options);
  }

  /** Keeps the latest `keepLatest` checkpoints of each thread (0: none). */
  pruneCheckpoints(
    request: DeepPartial<PruneCheckpointsRequest>,
    options?: CallOptions,
  ): Promise<PruneCheckpointsResponse> {
    const c = this.checkpoints;
    return this.unary(c, c.pruneCheckpoints, PruneCheckpointsRequest.fromPartial(request), options);
  }

  /** Removes the checkpoints whose metadata.run_id is among `runIds`. */
  deleteForRuns(request: DeepPartial<DeleteForRunsRequest>, options?: CallOptions): Promise<DeleteForRunsResponse> {
    const c = this.checkpoints;
    return this.unary(c, c.deleteForRuns, DeleteForRunsRequest.fromPartial(request), options);
  }

  /**
   * Closes the channel (shared by kv, locks and events), ends every
   * subscription and the checkpoint Session stream. Calls in flight fail with
   * CANCELLED or UNAVAILABLE.
   */
  close(): void {
    for (const sub of this.subscriptions) sub.close();
    this.subscriptions.clear();
    this.session?.close();
    this.kv.close();
  }

  private checkpointCall<M extends SessionMethod>(
    method: M,
    request: SessionCalls[M]["request"],
    options: CallOptions | undefined,
  ): Promise<SessionCalls[M]["response"]> {
    if (this.session === undefined || options?.metadata !== undefined)
      return this.checkpointUnary(method, request, options);
    return this.session.call(method, request, options);
  }

  private checkpointUnary<M extends SessionMethod>(
    method: M,
    request: SessionCalls[M]["request"],
    options: CallOptions | undefined,
  ): Promise<SessionCalls[M]["response"]> {
    const c = this.checkpoints;
    return this.unary(
      c,
      c[method] as UnaryMethod<SessionCalls[M]["request"], SessionCalls[M]["response"]>,
      request,
      options,
    );
  }

  /** Renews `held` until stopped; aborts `lost` with a LockLostError when the lock is (or may be) gone. */
  private keepRenewed(
    held: HeldLock,
    ttlMs: number,
    renewEveryMs: number,
    validUntil: number,
    lost: AbortController,
  ): { stop(): Promise<void> } {
    const stopped = new AbortController();
    const loop = async () => {
      let delay = renewEveryMs;
      while (!stopped.signal.aborted && !lost.signal.aborted) {
        try {
          await sleep(delay, stopped.signal);
        } catch {
          return;
        }
        const sentAt = performance.now();
        try {
          await this.renewLock(
            { namespace: held.namespace, name: held.name, lockId: held.lockId, ttl: durationFromMs(ttlMs) },
            { deadlineMs: Math.max(1, Math.min(this.deadlineMs, validUntil - sentAt)), signal: stopped.signal },
          );
          validUntil = sentAt + ttlMs;
          delay = renewEveryMs;
        } catch (err) {
          if (stopped.signal.aborted) return;
          const code = (err as Partial<ServiceError>).code;
          if (code === status.FAILED_PRECONDITION || performance.now() >= validUntil) {
            lost.abort(new LockLostError(held.namespace, held.name, held.token, { cause: err }));
            return;
          }
          // Transient: try again soon, while the lock may still be ours.
          delay = Math.min(Math.max(renewEveryMs / 4, 10), Math.max(validUntil - performance.now(), 0));
        }
      }
    };
    const running = loop();
    return {
      stop: async () => {
        stopped.abort();
        await running;
      },
    };
  }

  /** Runs `call` again while it fails with a retryable error, up to `retries` times. */
  private async retryTransient<T>(
    call: () => Promise<T>,
    retries: number,
    backoff: Backoff,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    for (let n = 0; ; n++) {
      try {
        return await call();
      } catch (err) {
        if (!isRetryable(err) || n >= retries || signal?.aborted) throw err;
        await sleep(backoffDelayMs(backoff, n + 1), signal);
      }
    }
  }

  private unary<Req, Res>(
    client:
      KeyValueServiceClient | LockServiceClient | EventServiceClient | StoreServiceClient | CheckpointServiceClient,
    method: UnaryMethod<Req, Res>,
    request: Req,
    options: CallOptions = {},
  ): Promise<Res> {
    const deadline = new Date(Date.now() + (options.deadlineMs ?? this.deadlineMs));
    const signal = options.signal;
    return new Promise<Res>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => call.cancel();
      const call = method.call(client, request, options.metadata ?? new Metadata(), { deadline }, (err, res) => {
        signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(res);
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}
