/**
 * PgChangeNotifier: the wake-ups of subscribers, within a replica and across
 * replicas, over one connection per replica on channel `agentstate_events`
 * (payload: a namespace).
 *
 * Publishing: once an append batch has committed, its replica calls
 * `publish(namespace)`, which wakes the replica's own subscribers at once and
 * sends `NOTIFY` for the other replicas, outside the write transaction: one
 * statement per round trip for every namespace published meanwhile
 * (coalesced), committed with synchronous_commit off (a wake-up needs no WAL
 * flush). A NOTIFY inside the append's transaction would serialise the
 * commits of every namespace on Postgres's notify lock. A replica that dies
 * between commit and NOTIFY leaves the others to their poll.
 *
 * Listening: each notification is passed to the watchers (ChangeFeed: the
 * namespace's reader reads its new events; this replica's own notifications
 * are skipped, it told its watchers when publishing). It is only a wake-up:
 * readers also poll, so a lost notification (reconnect, a replica's crash)
 * delays delivery but never loses an event.
 *
 * The connection has TCP keepalive on. When it is lost (Postgres restarted,
 * the backend terminated, the network cut) it is opened again, retrying every
 * RECONNECT_MS, and once LISTEN is back the watchers are told that any
 * namespace may have changed, to catch up on what was appended while nobody
 * listened rather than at the next poll. Namespaces published while it is down are not sent.
 */
import { Client } from "pg";
import { KEEPALIVE_INITIAL_DELAY_MS } from "./createPool";
import type { ChangeNotifier } from "../../domain/events";
import type { Logger } from "../../log/Logger";

const RECONNECT_MS = 500;
const CONNECT_TIMEOUT_MS = 5000;
/** The NOTIFY of every namespace published since the last one: $1 text[] of namespaces. */
const NOTIFY_SQL = "SELECT pg_notify('agentstate_events', ns) FROM unnest($1::text[]) AS ns";

export class PgChangeNotifier implements ChangeNotifier {
  private client: Client | undefined;
  /** Each watcher in an object of its own, so one function can watch twice. */
  private readonly listeners = new Set<{ onChange: (namespace: string | undefined) => void }>();
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  /** Set once LISTEN has worked: a later LISTEN is a reconnect, which wakes everyone to catch up. */
  private listenedBefore = false;
  private lostLogged = false;
  /** Pid of the listening backend: its own notifications are skipped. */
  private pid: number | undefined;
  /** Namespaces published and not yet sent. */
  private readonly unsent = new Set<string>();
  private sending = false;

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
      if (n.payload && n.processId !== this.pid) this.wake(n.payload);
    });
    let pid: number | undefined;
    try {
      await client.connect();
      // Its transactions are NOTIFYs only: nothing to wait for a WAL flush for.
      await client.query("SET synchronous_commit = off");
      pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid;
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
    this.pid = pid;
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

  watch(onChange: (namespace: string | undefined) => void): () => void {
    const listener = { onChange };
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * An append in `namespace` has committed: wakes this replica's subscribers
   * now and the other replicas' with the next NOTIFY.
   */
  publish(namespace: string): void {
    this.wake(namespace);
    if (this.closed) return;
    this.unsent.add(namespace);
    if (!this.sending) void this.send();
  }

  /** Sends the unsent namespaces, one statement per round, until none is left. */
  private async send(): Promise<void> {
    this.sending = true;
    try {
      while (this.unsent.size > 0) {
        const namespaces = [...this.unsent];
        this.unsent.clear();
        const client = this.client;
        if (client === undefined) return; // not listening: the other replicas poll
        try {
          await client.query(NOTIFY_SQL, [namespaces]);
        } catch (err) {
          this.log.debug("notify failed", { error: (err as Error).message });
        }
      }
    } finally {
      this.sending = false;
    }
  }

  private wake(namespace: string | undefined): void {
    for (const l of [...this.listeners]) l.onChange(namespace);
  }

  private wakeAll(): void {
    this.wake(undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.unsent.clear();
    // No wake-up: subscriptions end by their own signals at shutdown, and a read now would find the pool closing.
    await this.client?.end().catch(() => undefined);
  }
}
