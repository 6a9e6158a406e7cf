import { setTimeout as sleep } from "node:timers/promises";
import { credentials, type ServiceError } from "@grpc/grpc-js";
import {
  CompareAndSetRequest,
  GetRequest,
  KeyValueServiceClient,
  type CompareAndSetResponse,
  type GetResponse,
} from "../../clients/typescript/src/gen/agentstate/v1/kv";
import type { ServerProcess } from "./ServerProcess";

type Unary<Req, Res> = (req: Req, cb: (err: ServiceError | null, res: Res) => void) => unknown;
function call<Req, Res>(client: KeyValueServiceClient, fn: Unary<Req, Res>, req: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn.call(client, req, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))),
  );
}

export interface CacheRaceOptions {
  namespace: string;
  keys: string[];
  /** Writer and reader loops per server. Default 2 and 3. */
  writersPerServer?: number;
  readersPerServer?: number;
  /** Faults to inject while the loops run; the loops stop when it resolves. */
  during: (control: CacheRaceControl) => Promise<void>;
}

export interface CacheRaceControl {
  /** Stops the writers; resolves once no write is in flight. */
  pauseWriters(): Promise<void>;
  resumeWriters(): void;
}

export interface CacheRaceResult {
  /** Gets that returned a version older than one acknowledged before they started (should be none). */
  violations: string[];
  reads: number;
  writes: number;
}

/**
 * The stale-read checker of guarantee 3: writers (unconditional CompareAndSet)
 * and readers (Get) race on a few keys through every server while `during`
 * injects faults. A Get may not return a version older than the highest
 * version acknowledged to any writer before the Get started. Failed calls do
 * not count (a write may fail while a dependency restarts).
 */
export async function cacheRace(servers: ServerProcess[], opts: CacheRaceOptions): Promise<CacheRaceResult> {
  const clients = servers.map((s) => new KeyValueServiceClient(s.address, credentials.createInsecure()));
  const { namespace, keys } = opts;
  const ackedMax = new Map<string, number>(keys.map((k) => [k, 0]));
  const violations: string[] = [];
  let reads = 0;
  let writes = 0;
  let stop = false;
  let paused = false;
  let writing = 0;
  const t0 = Date.now();

  const writer = async (c: KeyValueServiceClient, id: number) => {
    let i = 0;
    while (!stop) {
      if (paused) {
        await sleep(10);
        continue;
      }
      const key = keys[(id + i++) % keys.length]!;
      writing++;
      try {
        const r = await call<unknown, CompareAndSetResponse>(
          c,
          c.compareAndSet as never,
          CompareAndSetRequest.fromPartial({
            namespace,
            key,
            expected: { any: true },
            value: Buffer.from(`w${id}-${i}`),
          }),
        );
        writes++;
        const v = r.item!.version;
        if (v > ackedMax.get(key)!) ackedMax.set(key, v);
      } catch {
        // Only acknowledged writes count.
      } finally {
        writing--;
      }
    }
  };
  const reader = async (c: KeyValueServiceClient, id: number) => {
    let i = 0;
    while (!stop) {
      const key = keys[(id + i++) % keys.length]!;
      const floor = ackedMax.get(key)!;
      try {
        const r = await call<unknown, GetResponse>(c, c.get as never, GetRequest.fromPartial({ namespace, key }));
        reads++;
        const v = r.found ? r.item!.version : 0;
        if (v < floor)
          violations.push(
            `t=${Date.now() - t0} server ${clients.indexOf(c)} key ${key}: read version ${v} (rev ${r.header?.revision}) after version ${floor} was acknowledged`,
          );
      } catch {
        // Reads may fail only if Postgres does.
      }
    }
  };

  const loops: Promise<void>[] = [];
  clients.forEach((c, s) => {
    const w = opts.writersPerServer ?? 2;
    const r = opts.readersPerServer ?? 3;
    for (let i = 0; i < w; i++) loops.push(writer(c, s * w + i));
    for (let i = 0; i < r; i++) loops.push(reader(c, s * r + i));
  });
  try {
    await opts.during({
      pauseWriters: async () => {
        paused = true;
        while (writing > 0) await sleep(5);
      },
      resumeWriters: () => {
        paused = false;
      },
    });
  } finally {
    stop = true;
    await Promise.all(loops);
    for (const c of clients) c.close();
  }
  return { violations, reads, writes };
}

/** The sum of a field of the "cache stats" lines the servers logged at shutdown (`near.hits` for the near cache's). */
export function loggedCacheStats(servers: ServerProcess[], field: "hit" | "near.hits"): number {
  return servers
    .flatMap((s) => s.logs())
    .filter((l) => l["msg"] === "cache stats")
    .reduce((n, l) => {
      const v = field === "hit" ? l["hit"] : (l["near"] as { hits?: number } | undefined)?.hits;
      return n + Number(v ?? 0);
    }, 0);
}
