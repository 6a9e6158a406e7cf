/**
 * Lock waits as a queue. Callers waiting for one lock name on this replica
 * wait in memory, in arrival order, on that name's queue; only the queue's
 * head tries the lock backend, when a release of the name is announced
 * (`wake`: this replica's own Unlock, or another replica's through the
 * release feed) and, as the fallback for releases nobody announced (expiry,
 * a lost notification), once per poll interval. So a name with a thousand
 * waiters costs the backend one attempt per release or per interval, not a
 * thousand retries on a backoff.
 *
 * Caps (guarantee 9): at most `perName` waiters on one name and `perServer`
 * on this replica; past either, `join` throws LimitExceededError naming the
 * setting, and the waiters already queued are not touched.
 *
 * Fairness: waiters of one replica get the lock in their arrival order
 * (FIFO), as long as no one else takes it meanwhile (another replica's
 * waiter, a try-once Lock): across replicas the heads race.
 */
import { LimitExceededError } from "../errors/errors";

export interface LockWaitCaps {
  perName: number;
  perNameSetting: string;
  perServer: number;
  perServerSetting: string;
}

/** One caller's place in a name's queue. */
export interface LockWaiter {
  readonly key: string;
}

interface Place extends LockWaiter {
  /** When it became head or last attempted: the fallback poll counts from here. */
  since: number;
  /** Set while it waits for its turn: wakes it to look again. */
  nudge: (() => void) | undefined;
  left: boolean;
}

interface Queue {
  places: Place[];
  /** A release arrived that the head has not yet tried for. */
  pending: boolean;
}

export type Turn = "attempt" | "timeout";

export class LockQueues {
  private readonly queues = new Map<string, Queue>();
  private total = 0;

  constructor(private readonly caps: LockWaitCaps) {}

  /** Waiters on this replica (every name). */
  get waiting(): number {
    return this.total;
  }

  /** Waiters on one name. */
  waitingOn(namespace: string, name: string): number {
    return this.queues.get(keyOf(namespace, name))?.places.length ?? 0;
  }

  /** Joins the name's queue at its tail, or throws LimitExceededError. The caller must `leave` once done. */
  join(namespace: string, name: string): LockWaiter {
    const c = this.caps;
    if (this.total >= c.perServer) {
      throw new LimitExceededError(
        c.perServerSetting,
        `too many Lock calls waiting on this server: the limit is ${c.perServer} (${c.perServerSetting})`,
      );
    }
    const key = keyOf(namespace, name);
    let q = this.queues.get(key);
    if ((q?.places.length ?? 0) >= c.perName) {
      throw new LimitExceededError(
        c.perNameSetting,
        `too many Lock calls waiting on lock ${name} in namespace ${namespace}: the limit is ${c.perName} (${c.perNameSetting})`,
      );
    }
    if (!q) this.queues.set(key, (q = { places: [], pending: false }));
    const place: Place = { key, since: Date.now(), nudge: undefined, left: false };
    q.places.push(place);
    this.total++;
    return place;
  }

  /**
   * Resolves "attempt" when `w` is the head and should try the lock now (a
   * release was announced, or `pollMs` passed since it became head or last
   * tried), "timeout" once `until` (ms since epoch) has passed. Rejects
   * nothing: an abort of `signal` resolves it, and the caller checks.
   */
  async turn(w: LockWaiter, until: number, pollMs: number, signal: AbortSignal): Promise<Turn> {
    const place = w as Place;
    const q = this.queues.get(place.key);
    if (!q) return "timeout";
    for (;;) {
      const now = Date.now();
      if (now >= until || signal.aborted) return "timeout";
      const head = q.places[0] === place;
      if (head && (q.pending || now - place.since >= pollMs)) {
        q.pending = false;
        place.since = now;
        return "attempt";
      }
      const wait = head ? Math.min(place.since + pollMs, until) - now : until - now;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          place.nudge = undefined;
          resolve();
        };
        const timer = setTimeout(done, wait);
        signal.addEventListener("abort", done, { once: true });
        place.nudge = done;
      });
    }
  }

  /** `w` got the lock: the release it was woken for is spent. Call before `leave`. */
  acquired(w: LockWaiter): void {
    const q = this.queues.get(w.key);
    if (q && q.places[0] === w) q.pending = false;
  }

  /** Leaves the queue (idempotent). The next waiter becomes head and tries at once if a release is pending. */
  leave(w: LockWaiter): void {
    const place = w as Place;
    if (place.left) return;
    place.left = true;
    this.total--;
    const q = this.queues.get(place.key);
    if (!q) return;
    const i = q.places.indexOf(place);
    if (i >= 0) q.places.splice(i, 1);
    if (q.places.length === 0) {
      this.queues.delete(place.key);
      return;
    }
    if (i === 0) {
      const next = q.places[0]!;
      next.since = Date.now();
      next.nudge?.();
    }
  }

  /** A release of the name was announced: its head tries now. */
  wake(namespace: string, name: string): void {
    const q = this.queues.get(keyOf(namespace, name));
    if (!q) return;
    q.pending = true;
    q.places[0]?.nudge?.();
  }

  /** Releases may have gone unannounced (the feed reconnected): every head tries now. */
  wakeAll(): void {
    for (const q of this.queues.values()) {
      q.pending = true;
      q.places[0]?.nudge?.();
    }
  }
}

function keyOf(namespace: string, name: string): string {
  // Namespaces never contain a NUL (validated at the edge), so the pair maps to one key.
  return `${namespace}\u0000${name}`;
}
