/**
 * The gRPC edge. Layout: one folder per service (kv/, locks/, events/, store/), each
 * a codec.ts (messages to domain values, every field checked) and a
 * handlers.ts; codec/ for what the codecs share (and the decode guard);
 * pipeline/ for what every call goes through (request id, error mapping,
 * termination, log line, metrics); tls/ for the listener's TLS credentials
 * (reloaded when the files change); toGrpcError.ts, the one table from domain
 * errors to status codes. A new RPC is a codec function and a handler.
 *
 * This file is the server: agentstate.v1 services, grpc.health.v1 health
 * and server reflection (descriptors loaded at run time from the same protos
 * with @grpc/proto-loader, so grpcurl needs no proto files). Message size
 * limits come from the configured limits so the transport never refuses what
 * the edge would accept.
 */
import type { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Server, ServerCredentials, type ChannelOptions, type ServiceDefinition } from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Config, ConnectionLimits } from "../config/config";
import type { Limits } from "../domain/limits";
import type { ChangeNotifier, EventStore } from "../domain/events";
import type { LockService } from "../domain/locks";
import type { ItemStore } from "../domain/items";
import type { KvStore } from "../domain/types";
import type { CheckpointStore } from "../domain/checkpoints";
import { CheckpointServiceService } from "../gen/agentstate/v1/checkpoint";
import { checkpointHandlers } from "./checkpoints/handlers";
import type { GrantAdmin } from "../auth/GrantAdmin";
import type { TokenAdmin } from "../auth/TokenAdmin";
import type { AuditLog } from "../domain/audit";
import { AdminServiceService, type AdminServiceServer } from "../gen/agentstate/v1/admin";
import { EventServiceService } from "../gen/agentstate/v1/event";
import { encodeOnce } from "./codec/encodeOnce";
import { KeyValueServiceService } from "../gen/agentstate/v1/kv";
import { LockServiceService } from "../gen/agentstate/v1/lock";
import { StoreServiceService } from "../gen/agentstate/v1/store";
import type { Logger } from "../log/Logger";
import { AbortReason } from "../errors/abort";
import type { Metrics } from "../metrics/Metrics";
import { guardDeserializers } from "./codec/decodeGuard";
import { appendPreDecode } from "./events/codec";
import type { CallEnv } from "./pipeline/context";
import type { AuthStep } from "./auth/AuthStep";
import { gatedServer } from "./auth/gatedServer";
import { adminHandlers } from "./admin/handlers";
import { grantHandlers } from "./admin/grantHandlers";
import { keyValueHandlers } from "./kv/handlers";
import { lockHandlers } from "./locks/handlers";
import { storeHandlers } from "./store/handlers";
import { eventHandlers, type EventHandlerOptions } from "./events/handlers";
import { ReloadingServerCredentials } from "./tls/ReloadingServerCredentials";
import { enforcePingPolicy, type PingedSession } from "./pingPolicy";

export const SERVICE_NAMES = [
  "agentstate.v1.KeyValueService",
  "agentstate.v1.LockService",
  "agentstate.v1.EventService",
  "agentstate.v1.StoreService",
  "agentstate.v1.CheckpointService",
] as const;

/** The descriptor set built from proto/ by `npm run gen`, copied into the build. */
export const DESCRIPTOR_SET = join(__dirname, "..", "gen", "agentstate.binpb");
export const HEALTH_DESCRIPTOR_SET = join(__dirname, "..", "gen", "health.binpb");

/**
 * A package definition for @grpc/reflection holding the exact file
 * descriptors buf compiled (well-known types included). Going through
 * proto-loader's own descriptors loses the well-known types' files and map
 * entries, which breaks grpcurl (grpc-node issue 2958).
 */
function reflectionPackage(sets: string[]): PackageDefinition {
  const fileDescriptorProtos = sets.flatMap((p) =>
    fromBinary(FileDescriptorSetSchema, readFileSync(p)).file.map((f) =>
      Buffer.from(toBinary(FileDescriptorProtoSchema, f)),
    ),
  );
  return { descriptors: { format: "", fileDescriptorProtos } } as unknown as PackageDefinition;
}

export interface ServerDeps {
  kv: KvStore;
  locks: LockService;
  events: EventStore;
  /** StoreService's items. */
  items: ItemStore;
  notifier: ChangeNotifier;
  checkpoints: CheckpointStore;
  eventOptions: EventHandlerOptions;
  metrics?: Metrics;
  limits: Limits;
  log: Logger;
  /** Unset: plaintext. A ReloadingServerCredentials (serverCredentials()) is watched while serving. */
  credentials?: ServerCredentials | undefined;
  /** Server reflection; default on. */
  reflection?: boolean;
  /** HTTP/2 connection bounds; unset: grpc-js's own defaults (unbounded). */
  connection?: ConnectionLimits | undefined;
  /** AGENTSTATE_AUTH=required: the pipeline's auth step (reflection follows it too), and AdminService (served only then). */
  auth?: { step: AuthStep; admin: TokenAdmin; audit: AuditLog; grants: GrantAdmin } | undefined;
}

/**
 * The grpc-js 1.14 server options for `c`. Only options the server reads:
 * it ignores grpc.max_metadata_size, grpc.keepalive_permit_without_calls and
 * grpc.http2.min_ping_interval_without_data_ms (client-side or C-core only;
 * the minimum ping interval is pingPolicy.ts).
 */
function connectionOptions(c: ConnectionLimits | undefined): ChannelOptions {
  if (!c) return {};
  return {
    "grpc.max_concurrent_streams": c.maxConcurrentStreams,
    // Also closes a connection that never sends the HTTP/2 preface: grpc-js
    // starts the idle timer when the session is created, on accept.
    "grpc.max_connection_idle_ms": c.idleMs,
    ...(c.maxAgeMs > 0
      ? { "grpc.max_connection_age_ms": c.maxAgeMs, "grpc.max_connection_age_grace_ms": c.maxAgeGraceMs }
      : {}),
    "grpc.keepalive_time_ms": c.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": c.keepaliveTimeoutMs,
    // Node's maxSessionMemory (MiB), which grpc-js otherwise turns off.
    "grpc-node.max_session_memory": c.maxSessionMemoryMiB,
  };
}

/**
 * The listener's credentials for `config`: plaintext, or TLS from the
 * configured files (mTLS with a client CA), reloaded when they change. Throws
 * if the files do not make a valid TLS configuration; called before anything
 * else is started so a bad certificate fails fast.
 */
export function serverCredentials(
  config: Pick<Config, "tls" | "tlsReloadMs">,
  log: Logger,
): ServerCredentials | undefined {
  return config.tls ? new ReloadingServerCredentials(config.tls, config.tlsReloadMs, log) : undefined;
}

/**
 * grpc-js has no option for the HTTP/2 header list size (it advertises
 * 2^32-1) or the number of header fields, so both go into the options it
 * hands to http2.createServer/createSecureServer for every listener: the
 * size advertised in SETTINGS, both enforced by Node before grpc-js sees the
 * call (the stream is reset with ENHANCE_YOUR_CALM, which gRPC clients report
 * as RESOURCE_EXHAUSTED). A grpc-js without that field (a future version)
 * keeps its own behaviour.
 */
function limitHeaders(server: Server, bytes: number, count: number): void {
  const common = (
    server as unknown as { commonServerOptions?: { settings?: Record<string, unknown>; maxHeaderListPairs?: number } }
  ).commonServerOptions;
  if (!common) return;
  common.settings = { ...common.settings, maxHeaderListSize: bytes };
  common.maxHeaderListPairs = count;
}

/**
 * Runs `each` on every HTTP/2 session (connection) the server accepts from
 * now on. grpc-js keeps its listeners in a private map and offers no hook;
 * without that map (a future version) nothing is watched.
 */
function onEverySession(server: Server, each: (session: PingedSession) => void): void {
  const listeners = (server as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
  for (const h2 of listeners?.keys() ?? []) {
    if (!h2.listeners("session").includes(each)) h2.on("session", each);
  }
}

export class AgentstateServer {
  readonly grpc: Server;
  readonly health: HealthImplementation;
  private readonly shutdownController = new AbortController();
  private readonly credentials: ServerCredentials;
  /** Health: serving only while listening, not shutting down, and no needed dependency is down. */
  private serving = false;
  private dependencyDown: ReadonlySet<string> = new Set();
  private watchSession: ((session: PingedSession) => void) | undefined;

  constructor(deps: ServerDeps) {
    this.credentials = deps.credentials ?? ServerCredentials.createInsecure();
    this.grpc = new Server({
      "grpc.max_receive_message_length": deps.limits.maxMessageBytes,
      "grpc.max_send_message_length": deps.limits.maxMessageBytes,
      ...connectionOptions(deps.connection),
    });
    if (deps.connection) {
      limitHeaders(this.grpc, deps.connection.maxHeaderListBytes, deps.connection.maxHeaderCount);
      const policy = { minIntervalMs: deps.connection.minPingIntervalMs, maxStrikes: deps.connection.maxPingStrikes };
      this.watchSession = (session) =>
        enforcePingPolicy(session, policy, () =>
          deps.log.warn("connection closed: too many pings (GOAWAY too_many_pings)", {
            setting: "AGENTSTATE_KEEPALIVE_MIN_PING_INTERVAL_MS",
          }),
        );
    }
    const metrics = deps.metrics;
    const env: CallEnv = {
      log: deps.log,
      shutdown: this.shutdownController.signal,
      observe: metrics ? metrics.rpcObserver() : undefined,
      auth: deps.auth?.step,
    };
    const guard = (d: ServiceDefinition) =>
      guardDeserializers(d, DESCRIPTOR_SET, "agentstate.v1", {
        "agentstate.v1.AppendEventRequest": appendPreDecode(deps.limits),
      });
    this.grpc.addService(guard(KeyValueServiceService), keyValueHandlers(deps.kv, deps.limits, env));
    this.grpc.addService(
      guard(LockServiceService),
      lockHandlers(
        deps.locks,
        deps.limits,
        env,
        deps.metrics && {
          lockWait: (outcome, seconds) => deps.metrics!.lockWait.observe({ outcome }, seconds),
        },
      ),
    );
    this.grpc.addService(
      encodeOnce(guard(EventServiceService), "subscribe"),
      eventHandlers(deps.events, deps.notifier, deps.limits, deps.eventOptions, env),
    );
    this.grpc.addService(guard(StoreServiceService), storeHandlers(deps.items, deps.limits, env));

    this.grpc.addService(guard(CheckpointServiceService), checkpointHandlers(deps.checkpoints, deps.limits, env));

    if (deps.auth) {
      const admin: AdminServiceServer = {
        ...adminHandlers(deps.auth.admin, deps.auth.audit, env),
        ...grantHandlers(deps.auth.grants, env),
      };
      this.grpc.addService(guard(AdminServiceService), admin);
    }

    this.health = new HealthImplementation({
      "": "NOT_SERVING",
      ...Object.fromEntries(SERVICE_NAMES.map((s) => [s, "NOT_SERVING"])),
    });
    this.health.addToServer(this.grpc);

    // Descriptors come from the descriptor set `npm run gen` builds from proto/
    // (it includes the well-known types as files, which reflection clients need).
    if (deps.reflection !== false) {
      new ReflectionService(reflectionPackage([DESCRIPTOR_SET, HEALTH_DESCRIPTOR_SET])).addToServer(
        deps.auth ? gatedServer(this.grpc, deps.auth.step, deps.log) : this.grpc,
      );
    }
  }

  /** Binds and starts serving; resolves with the bound "host:port". */
  async listen(host: string, port: number): Promise<string> {
    const target = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    const bound = await new Promise<number>((resolve, reject) =>
      this.grpc.bindAsync(target, this.credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
    if (this.credentials instanceof ReloadingServerCredentials) this.credentials.watch();
    if (this.watchSession) onEverySession(this.grpc, this.watchSession);
    this.setServing(true);
    return host.includes(":") ? `[${host}]:${bound}` : `${host}:${bound}`;
  }

  setServing(serving: boolean): void {
    this.serving = serving && !this.shutdownController.signal.aborted;
    this.publishHealth();
  }

  /** The health service names ("" overall) whose dependencies are down (compose/DependencyHealth). */
  setDependencyDown(services: ReadonlySet<string>): void {
    this.dependencyDown = services;
    this.publishHealth();
  }

  private publishHealth(): void {
    for (const name of ["", ...SERVICE_NAMES]) {
      this.health.setStatus(name, this.serving && !this.dependencyDown.has(name) ? "SERVING" : "NOT_SERVING");
    }
  }

  /**
   * Graceful shutdown: report NOT_SERVING, stop taking calls, end long waits
   * with UNAVAILABLE (via the shutdown signal), let in-flight calls drain for
   * up to graceMs, then cut what is left.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.setServing(false);
    if (this.credentials instanceof ReloadingServerCredentials) this.credentials.stop();
    this.shutdownController.abort(new AbortReason("shutdown"));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.grpc.forceShutdown();
        resolve();
      }, graceMs);
      this.grpc.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
