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
 * each node of a cluster); a server that cannot say (CONFIG refused) is left out.
 */
export async function evictionPolicies(redis: Redis | Cluster): Promise<string[]> {
  const servers = redis.isCluster ? (redis as Cluster).nodes("all") : [redis as Redis];
  const replies = await Promise.all(
    servers.map((s) => s.config("GET", "maxmemory-policy").catch(() => []) as Promise<string[]>),
  );
  return replies.flatMap((r) => (r[1] === undefined ? [] : [r[1]]));
}

export interface CacheKeyspace {
  /** The alive key the scripts on `namespace`'s keys check. */
  aliveKey(base: string, namespace: string): string;
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
   * Writes the alive keys of the epoch `base`; sends nothing more once
   * `young()` is false (an alive key written after the epoch matured could
   * hide a loss of data).
   */
  createAliveKeys(base: string, value: string, young: () => boolean): Promise<void>;
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

  async createAliveKeys(base: string, value: string): Promise<void> {
    await this.redis.set(`${base}:alive`, value, "NX");
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

  async createAliveKeys(_base: string, value: string, young: () => boolean): Promise<void> {
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
        for (let i = 0; i < slots.length && young(); i += ALIVE_CHUNK) {
          const p = node.pipeline();
          for (const slot of slots.slice(i, i + ALIVE_CHUNK)) p.set(this.slotAliveKey(slot), value);
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
