/**
 * PgChangeNotifier: one LISTEN connection per replica on channel
 * `agentstate_events` (appends NOTIFY it with their namespace at commit), fanned
 * out to waiting subscribers. It is only a wake-up: subscribers also re-read on
 * a poll interval, so a lost notification (reconnect, another replica's
 * failover) delays delivery but never loses an event.
 */
import { Client } from "pg";
import type { ChangeNotifier } from "../../domain/events";
import type { Logger } from "../../log/Logger";

export class PgChangeNotifier implements ChangeNotifier {
  private client: Client | undefined;
  private readonly waiters = new Map<string, Set<() => void>>();
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new Client({ connectionString: this.connectionString, application_name: "agentstate-listen" });
    client.on("error", () => undefined);
    client.on("end", () => {
      if (this.client === client) this.client = undefined;
      this.wakeAll(); // readers re-check Postgres now rather than at the next poll
      if (!this.closed) this.retry = setTimeout(() => void this.connect(), 500).unref();
    });
    client.on("notification", (n) => {
      if (n.payload) this.wake(n.payload);
    });
    try {
      await client.connect();
      await client.query("LISTEN agentstate_events");
      this.client = client;
    } catch (err) {
      this.log.debug("listen connection failed", { error: (err as Error).message });
      await client.end().catch(() => undefined);
    }
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
