/**
 * PgChangeNotifier: one LISTEN connection per replica on channel
 * `agentstate_events` (appends NOTIFY it with their namespace at commit), fanned
 * out to waiting subscribers. It is only a wake-up: subscribers also re-read on
 * a poll interval, so a lost notification (reconnect, another replica's
 * failover) delays delivery but never loses an event.
 *
 * The connection has TCP keepalive on. When it is lost (Postgres restarted,
 * the backend terminated, the network cut) it is opened again, retrying every
 * RECONNECT_MS, and once LISTEN is back every waiting subscriber is woken once
 * to catch up on what was appended while nobody listened, rather than waiting
 * for its next poll.
 */
import { Client } from "pg";
import { KEEPALIVE_INITIAL_DELAY_MS } from "./createPool";
import type { ChangeNotifier } from "../../domain/events";
import type { Logger } from "../../log/Logger";

const RECONNECT_MS = 500;
const CONNECT_TIMEOUT_MS = 5000;

export class PgChangeNotifier implements ChangeNotifier {
  private client: Client | undefined;
  private readonly waiters = new Map<string, Set<() => void>>();
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  /** Set once LISTEN has worked: a later LISTEN is a reconnect, which wakes everyone to catch up. */
  private listenedBefore = false;
  private lostLogged = false;

  constructor(
    private readonly connectionString: string,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new Client({
      connectionString: this.connectionString,
      application_name: "agentstate-listen",
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
    });
    let ended = false;
    const lost = (why: string) => {
      if (ended) return;
      ended = true;
      if (this.client === client) this.client = undefined;
      if (this.closed) return;
      if (!this.lostLogged && this.listenedBefore) {
        this.lostLogged = true;
        this.log.warn("listen connection lost; reconnecting (subscribers poll meanwhile)", { reason: why });
      }
      this.wakeAll(); // readers re-check Postgres now rather than at the next poll
      this.scheduleReconnect();
    };
    client.on("error", (err) => lost(err.message));
    client.on("end", () => lost("connection ended"));
    client.on("notification", (n) => {
      if (n.payload) this.wake(n.payload);
    });
    try {
      await client.connect();
      await client.query("LISTEN agentstate_events");
    } catch (err) {
      this.log.debug("listen connection failed", { error: (err as Error).message });
      lost((err as Error).message);
      await client.end().catch(() => undefined);
      return;
    }
    if (ended || this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    if (this.listenedBefore) {
      this.log.info("listen connection restored");
      this.lostLogged = false;
      // Appends committed while nobody listened sent their NOTIFY to no one: catch up now.
      this.wakeAll();
    }
    this.listenedBefore = true;
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.connect();
    }, RECONNECT_MS).unref();
  }

  wait(namespace: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      let set = this.waiters.get(namespace);
      if (!set) this.waiters.set(namespace, (set = new Set()));
      const s = set;
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        s.delete(done);
        if (s.size === 0 && this.waiters.get(namespace) === s) this.waiters.delete(namespace);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener("abort", done, { once: true });
      s.add(done);
    });
  }

  private wake(namespace: string): void {
    const set = this.waiters.get(namespace);
    if (set) for (const w of [...set]) w();
  }

  private wakeAll(): void {
    for (const ns of [...this.waiters.keys()]) this.wake(ns);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.wakeAll();
    await this.client?.end().catch(() => undefined);
  }
}
