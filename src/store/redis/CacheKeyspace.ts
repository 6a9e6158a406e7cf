/**
 * CacheKeyspace: where the cache's keys live, and how the epoch tells that
 * the Redis under it may have lost data. Two layouts:
 *
 * - One Redis (SingleRedisKeyspace, the layout of every release so far): one
 *   alive key per epoch; an item's keys share the `{hash}` tag of its
 *   namespace and key; the Redis's identity is its run id (a restart changes it).
 *
 * - A Redis Cluster (ClusterKeyspace): a cache script may only touch keys of
 *   one slot, and each script touches an item's keys, the namespace's known
 *   revision and an alive key. So the hash tag is the namespace (every key of
 *   a namespace in one slot: a hot namespace is one shard), and there is an
 *   alive key in every slot (16384), so each script checks the one of its
 *   own slot. They hold the cluster's identity, the run ids of its masters,
 *   and outlive epochs: written (SET) only while the current epoch is young,
 *   so a write that moves the epoch costs no rewrite, while a shard that lost
 *   its data loses its alive keys and stays off until a new epoch has
 *   written them again. A restart or a failover (the promoted replica may
 *   lack writes the old master acknowledged, e.g. a write marker) changes the
 *   identity: the epoch moves, as for a restarted single Redis, and the alive
 *   keys are rewritten with the new identity while the new epoch is young.
 *   Between the change and the epoch's next refresh no hit may come from the
 *   new master: every way a command can reach another master (a node's
 *   connection closed, a new slot map) calls onDoubt first (see watch), and
 *   MOVED is never followed (createRedisClient).
 */
import { createHash } from "node:crypto";
import { randomBytes } from "node:crypto";
import type { Cluster } from "ioredis";
import type Redis from "ioredis";
import { keySlot, slotTag, SLOTS } from "./clusterSlots";

/**
 * Eviction policies that could evict the keys the protocol keeps without a
 * TTL (write markers, writer records, known revisions, alive keys): any
 * `allkeys-*`. The `volatile-*` policies only evict keys with a TTL (entries
 * and fill tokens), whose loss costs a miss.
 */
const UNSAFE_POLICIES = /^allkeys-/;

/** The first unsafe policy among `policies`, or undefined. */
export function unsafeEvictionPolicy(policies: readonly string[]): string | undefined {
  return policies.find((p) => UNSAFE_POLICIES.test(p));
}

/**
 * The eviction policy of every server the cache writes to (one Redis, or
 * each node of a cluster); a server that cannot say is left out. Read from
 * INFO memory, not CONFIG GET: Redis 6 counts every CONFIG call as one
 * command, and the scripts' eviction check counts CONFIG SET calls.
 */
export async function evictionPolicies(redis: Redis | Cluster): Promise<string[]> {
  const servers = redis.isCluster ? (redis as Cluster).nodes("all") : [redis as Redis];
  const replies = await Promise.all(servers.map((s) => s.info("memory").catch(() => "")));
  return replies.flatMap((r) => {
    const policy = /maxmemory_policy:([\w-]+)/.exec(r)?.[1];
    return policy === undefined ? [] : [policy];
  });
}

/**
 * The counters an epoch is armed with (hash fields of its armed key, compared
 * by the scripts that store entries or raise known revisions): evicted_keys
 * (e), calls of CONFIG SET (s) and of CONFIG RESETSTAT (r), and
 * total_commands_processed (t), read in one MULTI with a maxmemory-policy that
 * evicts no key without a TTL.
 */
export interface ArmCounters {
  e: string;
  s: string;
  r: string;
  t: string;
}

/** The counters of one server from its INFO stats, commandstats and memory; undefined when its policy is unsafe. */
export function armCounters(stats: string, commandstats: string, memory: string): ArmCounters | undefined {
  const policy = /maxmemory_policy:([\w-]+)/.exec(memory)?.[1];
  if (policy === undefined || unsafeEvictionPolicy([policy]) !== undefined) return undefined;
  const e = /evicted_keys:(\d+)/.exec(stats)?.[1];
  const t = /total_commands_processed:(\d+)/.exec(stats)?.[1];
  if (e === undefined || t === undefined) return undefined;
  // Redis 7 counts CONFIG subcommands apart; Redis 6 only CONFIG as a whole.
  const s = (/cmdstat_config\|set:calls=(\d+)/.exec(commandstats) ??
    /cmdstat_config:calls=(\d+)/.exec(commandstats))?.[1];
  const r = /cmdstat_config\|resetstat:calls=(\d+)/.exec(commandstats)?.[1];
  return { e, s: s ?? "0", r: r ?? "0", t };
}

/** Reads one server's ArmCounters atomically (undefined: unsafe policy). */
async function readArmCounters(redis: Redis): Promise<ArmCounters | undefined> {
  const replies = await redis.multi().info("stats").info("commandstats").info("memory").exec();
  if (replies === null || replies.some(([err]) => err !== null)) throw new Error("INFO failed");
  const [stats, commandstats, memory] = replies.map(([, v]) => String(v));
  return armCounters(stats!, commandstats!, memory!);
}

/** The counters of every server the cache writes to, by server (see CacheKeyspace.armSnapshot). */
export type ArmSnapshot = ReadonlyMap<string, ArmCounters>;

export interface CacheKeyspace {
  /** The alive key the scripts on `namespace`'s keys check. */
  aliveKey(base: string, namespace: string): string;
  /** The armed key (ArmCounters) the scripts on `namespace`'s keys check, beside its alive key. */
  armedKey(base: string, namespace: string): string;
  /**
   * The ArmCounters of every server, or undefined when a server's policy is
   * unsafe. An epoch may be armed with a snapshot read before it began.
   */
  armSnapshot(): Promise<ArmSnapshot | undefined>;
  /** Deletes the alive keys the refresh samples, so the next young epoch writes (and arms) them again. */
  dropAlive(base: string): Promise<void>;
  /** The common part of an item's keys (`:e`, `:w`, `:t`, `:lw` follow); `hash` names the namespace and key. */
  itemBase(base: string, namespace: string, hash: string): string;
  /** The namespace's known revision in the epoch `base`. */
  knownRevisionKey(base: string, namespace: string): string;
  /** Changes whenever the Redis may have lost or replaced data (restart, failover). */
  identity(): Promise<string>;
  /** What the alive keys hold in `epoch` for this identity (scripts compare it). */
  aliveValue(epoch: number, identity: string): string;
  /** Alive keys whose loss means the Redis lost data: checked at every refresh. */
  sampleAliveKeys(base: string): string[];
  /**
   * Writes the alive keys of the epoch `base`, each with its armed key (the
   * `arm` counters of its server); sends nothing more once `young()` is false
   * (an alive key written after the epoch matured could hide a loss of data).
   */
  createAliveKeys(base: string, value: string, young: () => boolean, arm: ArmSnapshot): Promise<void>;
  /** Calls `onDoubt` whenever commands may start reaching another Redis than the identity describes. */
  watch(onDoubt: () => void): void;
  /** The eviction policies of the servers (evictionPolicies). */
  evictionPolicies(): Promise<string[]>;
}

export class SingleRedisKeyspace implements CacheKeyspace {
  constructor(private readonly redis: Redis) {}

  aliveKey(base: string): string {
    return `${base}:alive`;
  }

  armedKey(base: string): string {
    return `${base}:armed`;
  }

  async armSnapshot(): Promise<ArmSnapshot | undefined> {
    const c = await readArmCounters(this.redis);
    return c && new Map([["", c]]);
  }

  async dropAlive(base: string): Promise<void> {
    await this.redis.del(`${base}:alive`);
  }

  itemBase(base: string, _namespace: string, hash: string): string {
    return `${base}:{${hash}}`;
  }

  knownRevisionKey(base: string, namespace: string): string {
    return `${base}:rev:${namespace}`;
  }

  async identity(): Promise<string> {
    const info = await this.redis.info("server");
    return /run_id:([0-9a-f]+)/.exec(info)?.[1] ?? randomBytes(20).toString("hex");
  }

  aliveValue(epoch: number, identity: string): string {
    return `${epoch}:${identity}`;
  }

  sampleAliveKeys(base: string): string[] {
    return [`${base}:alive`];
  }

  async createAliveKeys(base: string, value: string, _young: () => boolean, arm: ArmSnapshot): Promise<void> {
    const c = arm.get("");
    if (c === undefined) throw new Error("no arm for the server");
    // Any snapshot read before the epoch began arms it soundly, so a later one may replace an earlier.
    const r = await this.redis
      .multi()
      .set(`${base}:alive`, value, "NX")
      .hset(`${base}:armed`, { ...c })
      .exec();
    const failed = r?.find(([err]) => err !== null);
    if (failed) throw failed[0]!;
  }

  watch(onDoubt: () => void): void {
    this.redis.on("close", onDoubt);
  }

  evictionPolicies(): Promise<string[]> {
    return evictionPolicies(this.redis);
  }
}

/** Slots whose alive keys one pipeline writes. */
const ALIVE_CHUNK = 128;

export class ClusterKeyspace implements CacheKeyspace {
  /** The master of each slot, as of the last slot map seen (see watch). */
  private masters: string[] = [];

  constructor(
    private readonly cluster: Cluster,
    private readonly prefix: string,
  ) {}

  aliveKey(_base: string, namespace: string): string {
    return this.slotAliveKey(keySlot(namespace));
  }

  armedKey(_base: string, namespace: string): string {
    return this.slotArmedKey(keySlot(namespace));
  }

  async armSnapshot(): Promise<ArmSnapshot | undefined> {
    const keys = this.masterKeys();
    const counters = await Promise.all(keys.map((key) => readArmCounters(this.node(key))));
    if (counters.some((c) => c === undefined)) return undefined;
    return new Map(keys.map((key, i) => [key, counters[i]!]));
  }

  async dropAlive(): Promise<void> {
    await Promise.all(this.sampleAliveKeys().map((k) => this.cluster.del(k)));
  }

  aliveValue(_epoch: number, identity: string): string {
    return identity;
  }

  itemBase(base: string, namespace: string, hash: string): string {
    // Namespaces hold no braces ([a-z0-9][a-z0-9._-]*): the tag is the namespace.
    return `${base}:{${namespace}}:${hash}`;
  }

  knownRevisionKey(base: string, namespace: string): string {
    return `${base}:{${namespace}}:rev`;
  }

  /**
   * The masters' run ids, once the slot map is fresh and every master in it
   * says it is one (else throws: the map is stale, and no refresh succeeds
   * until it is not).
   */
  async identity(): Promise<string> {
    await new Promise<void>((resolve, reject) =>
      this.cluster.refreshSlotsCache((err) => (err ? reject(err) : resolve())),
    );
    const ids = await Promise.all(
      this.masterKeys().map(async (key) => {
        const info = await this.node(key).info("server", "replication");
        const runId = /run_id:([0-9a-f]+)/.exec(info)?.[1];
        if (!/^role:master\s*$/m.test(info) || runId === undefined)
          throw new Error("a node of the slot map is no master");
        return runId;
      }),
    );
    return createHash("sha256").update(ids.sort().join(",")).digest("hex").slice(0, 24);
  }

  sampleAliveKeys(): string[] {
    // One slot of each master: a master that lost its data loses that key too.
    const seen = new Set<string>();
    const keys: string[] = [];
    this.cluster.slots.forEach((nodes, slot) => {
      const master = nodes[0];
      if (master === undefined || seen.has(master)) return;
      seen.add(master);
      keys.push(this.slotAliveKey(slot));
    });
    return keys;
  }

  async createAliveKeys(_base: string, value: string, young: () => boolean, arm: ArmSnapshot): Promise<void> {
    // One pipeline per master (a cluster pipeline must stay on one node).
    const bySlotOwner = new Map<string, number[]>();
    for (let slot = 0; slot < SLOTS; slot++) {
      const master = this.cluster.slots[slot]?.[0];
      if (master === undefined) throw new Error(`slot ${slot} has no master`);
      let slots = bySlotOwner.get(master);
      if (slots === undefined) bySlotOwner.set(master, (slots = []));
      slots.push(slot);
    }
    // Each master's sampled key (its first slot, sampleAliveKeys) goes last:
    // present with this value, it says every other slot of the master was
    // written too, even when an earlier attempt failed or stopped half-way.
    // (Otherwise a partial write passes the check while the slots it missed
    // fail every script, whose unmarked writes move the epoch: as alive keys
    // outlive epochs, nothing would ever write those slots.)
    for (const slots of bySlotOwner.values()) slots.push(slots.shift()!);
    // In chunks, so each command's timeout starts shortly before Redis gets to it.
    await Promise.all(
      [...bySlotOwner].map(async ([master, slots]) => {
        // Straight to the master's connection (a cluster pipeline checks every key's slot: much slower);
        // a slot that moved meanwhile answers MOVED, which fails this refresh.
        const node = this.node(master);
        const c = arm.get(master);
        if (c === undefined) throw new Error("no arm for a master of the slot map");
        for (let i = 0; i < slots.length && young(); i += ALIVE_CHUNK) {
          const p = node.pipeline();
          // Each slot's armed key before its alive key: an alive key is never without its arm.
          for (const slot of slots.slice(i, i + ALIVE_CHUNK))
            p.hset(this.slotArmedKey(slot), { ...c }).set(this.slotAliveKey(slot), value);
          const failed = ((await p.exec().catch((err: unknown) => [[err, null]])) ?? []).find(([err]) => err !== null);
          if (failed) {
            // A node pipeline bypasses the cluster's own redirection handling: refresh the map here.
            this.cluster.refreshSlotsCache();
            throw failed[0]!;
          }
        }
      }),
    );
  }

  watch(onDoubt: () => void): void {
    // A node connection lost: its master may be restarting or failing over.
    this.cluster.on("+node", (node: Redis) => node.on("close", onDoubt));
    // A new slot map (ours, the periodic one, after a node was lost): emitted
    // right after the map changes, before any command can use it.
    this.cluster.on("refresh", () => {
      const now = this.masterOfEachSlot();
      const changed = now.length !== this.masters.length || now.some((m, i) => m !== this.masters[i]);
      this.masters = now;
      if (changed) onDoubt();
    });
  }

  evictionPolicies(): Promise<string[]> {
    return evictionPolicies(this.cluster);
  }

  private masterOfEachSlot(): string[] {
    const out = new Array<string>(SLOTS);
    for (let slot = 0; slot < SLOTS; slot++) out[slot] = this.cluster.slots[slot]?.[0] ?? "";
    return out;
  }

  private slotAliveKey(slot: number): string {
    return `${this.prefix}:c:{${slotTag(slot)}}:alive`;
  }

  private slotArmedKey(slot: number): string {
    return `${this.prefix}:c:{${slotTag(slot)}}:armed`;
  }

  private node(key: string): Redis {
    const node = this.cluster.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === key);
    if (node === undefined) throw new Error("a master of the slot map has no connection");
    return node;
  }

  private masterKeys(): string[] {
    const keys = new Set<string>();
    for (let slot = 0; slot < SLOTS; slot++) {
      const m = this.cluster.slots[slot]?.[0];
      if (m === undefined) throw new Error(`slot ${slot} has no master`);
      keys.add(m);
    }
    return [...keys];
  }
}
