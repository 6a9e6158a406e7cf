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
 * The connection is a PgListenConnection (TCP keepalive, reopened when lost),
 * and once LISTEN is back the watchers are told that any
 * namespace may have changed, to catch up on what was appended while nobody
 * listened rather than at the next poll. Namespaces published while it is down are not sent.
 */
import type { ChangeNotifier } from "../../domain/events";
import type { Logger } from "../../log/Logger";
import { PgListenConnection } from "./PgListenConnection";

/** The NOTIFY of every namespace published since the last one: $1 text[] of namespaces. */
const NOTIFY_SQL = "SELECT pg_notify('agentstate_events', ns) FROM unnest($1::text[]) AS ns";

export class PgChangeNotifier implements ChangeNotifier {
  private readonly connection: PgListenConnection;
  /** Each watcher in an object of its own, so one function can watch twice. */
  private readonly listeners = new Set<{ onChange: (namespace: string | undefined) => void }>();
  private closed = false;
  /** Pid of the listening backend: its own notifications are skipped. */
  private pid: number | undefined;
  /** Namespaces published and not yet sent. */
  private readonly unsent = new Set<string>();
  private sending = false;

  constructor(
    connectionString: string,
    private readonly log: Logger,
  ) {
    this.connection = new PgListenConnection(
      {
        connectionString,
        applicationName: "agentstate-listen",
        channel: "agentstate_events",
        logPrefix: "",
        meanwhile: "subscribers poll meanwhile",
        prepare: async (client) => {
          // Its transactions are NOTIFYs only: nothing to wait for a WAL flush for.
          await client.query("SET synchronous_commit = off");
          this.pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid;
        },
      },
      {
        notification: (n) => {
          if (n.payload && n.processId !== this.pid) this.wake(n.payload);
        },
        // Appends committed while nobody listened sent their NOTIFY to no one: catch up now.
        listening: (again) => {
          if (again) this.wakeAll();
        },
        lost: () => this.wakeAll(), // readers re-check Postgres now rather than at the next poll
      },
      log,
    );
  }

  start(): void {
    void this.connection.start();
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
        const client = this.connection.client;
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
    this.unsent.clear();
    // No wake-up: subscriptions end by their own signals at shutdown, and a read now would find the pool closing.
    await this.connection.close();
  }
}
