/**
 * EndWrites: sends the end-writes (cacheEndWrite-n.lua) asked for in one turn
 * of the event loop as one script call per namespace and epoch. A group
 * commit answers every write of its batch (one namespace) in one turn, so the
 * end-writes of a batch share one call: the script's fixed cost and its
 * eviction check (an `INFO stats` read, BENCHMARKS.md 7b) are paid once per
 * batch, not once per write. The script runs each write's steps as a call of
 * its own would, in the order they were asked for, and answers each write's
 * code; an error of the call is each write's error.
 */
import type { CacheCommands } from "./cacheScripts";

/** The keys a namespace's end-writes share: the epoch's alive key, the namespace's known revision, the epoch's arm. */
export interface EndWriteShared {
  alive: string;
  known: string;
  armed: string;
}

/** One write's end: its item keys and the script's arguments for it (see cacheEndWrite-n.lua). */
export interface EndWrite {
  entry: string;
  markers: string;
  token: string;
  writers: string;
  aliveValue: string;
  writerId: string;
  /** Observed revision ("0": nothing to install). */
  revision: string;
  meta: string;
  bytes: Buffer;
  ttlMs: string;
}

interface Queued {
  write: EndWrite;
  resolve(code: number): void;
  reject(err: unknown): void;
}

interface Group {
  shared: EndWriteShared;
  writes: Queued[];
}

/** Most writes in one script call (a group commit batch is 64 by default). */
export const MAX_END_WRITES_PER_CALL = 128;

export class EndWrites {
  /** The end-writes waiting for the end of this turn, by their shared keys. */
  private groups = new Map<string, Group>();

  constructor(private readonly redis: Pick<CacheCommands, "cacheEndWrite">) {}

  /** Ends one write; resolves with its reply code (CacheEndWriteReply). */
  end(shared: EndWriteShared, write: EndWrite): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (this.groups.size === 0) process.nextTick(() => this.flush());
      const id = `${shared.alive}\0${shared.known}\0${shared.armed}`;
      let group = this.groups.get(id);
      if (group === undefined) this.groups.set(id, (group = { shared, writes: [] }));
      group.writes.push({ write, resolve, reject });
    });
  }

  /**
   * Runs after every promise continuation of the turn (a tick queued from one
   * runs once the microtask queue is empty), so every write a batch answered
   * has asked for its end by then.
   */
  private flush(): void {
    const groups = this.groups;
    this.groups = new Map();
    for (const { shared, writes } of groups.values()) {
      for (let i = 0; i < writes.length; i += MAX_END_WRITES_PER_CALL) {
        this.send(shared, writes.slice(i, i + MAX_END_WRITES_PER_CALL));
      }
    }
  }

  private send(shared: EndWriteShared, writes: Queued[]): void {
    const keys: string[] = [shared.alive, shared.known, shared.armed];
    const args: (string | Buffer)[] = [];
    for (const { write: w } of writes) {
      keys.push(w.entry, w.markers, w.token, w.writers);
      args.push(w.aliveValue, w.writerId, w.revision, w.meta, w.bytes, w.ttlMs);
    }
    let reply: Promise<number[]>;
    try {
      reply = this.redis.cacheEndWrite(String(keys.length), ...keys, ...args);
    } catch (err) {
      // Thrown, not rejected: still each write's error, never the tick's.
      reply = Promise.reject(err);
    }
    reply.then(
      (codes) => {
        for (const [i, q] of writes.entries()) {
          const code = codes[i];
          if (typeof code === "number") q.resolve(code);
          else q.reject(new Error(`cacheEndWrite answered ${codes.length} codes for ${writes.length} writes`));
        }
      },
      (err: unknown) => {
        for (const q of writes) q.reject(err);
      },
    );
  }
}
