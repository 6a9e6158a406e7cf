/**
 * PgListenConnection: one dedicated Postgres connection that LISTENs on one
 * channel and stays open: TCP keepalive on, and when it is lost (Postgres
 * restarted, the backend terminated, the network cut) it is opened again,
 * retrying every RECONNECT_MS until LISTEN works, for as long as it is not
 * closed.
 *
 * Its owner (PgChangeNotifier, PgLockReleases, PgTokenChanges) gives what
 * differs between them: the channel, any setup before LISTEN, and what to do
 * with a notification, on a loss (notifications may be missed until LISTEN
 * works again) and once listening again. The loss of a listening connection
 * is logged once at warn level per outage, its end at info level; failed
 * attempts meanwhile at debug level.
 */
import { Client, type Notification } from "pg";
import { KEEPALIVE_INITIAL_DELAY_MS } from "./createPool";
import type { Logger } from "../../log/Logger";

const RECONNECT_MS = 500;
const CONNECT_TIMEOUT_MS = 5000;

export interface ListenOptions {
  connectionString: string;
  /** `application_name` of the connection (what pg_stat_activity shows). */
  applicationName: string;
  channel: string;
  /** Prefix of the log messages ("listen connection lost", "…restored"), e.g. "lock release ". */
  logPrefix: string;
  /** What happens while the connection is down, said in the warning, e.g. "subscribers poll meanwhile". */
  meanwhile: string;
  /** Runs on the new connection before LISTEN (settings, reading the backend's pid). */
  prepare?: (client: Client) => Promise<void>;
}

export interface ListenHandlers {
  notification(n: Notification): void;
  /** LISTEN works; `again` when it had worked before: notifications of the outage were missed. */
  listening(again: boolean): void;
  /** The connection was lost, or an attempt to open it failed; another follows. */
  lost(why: string): void;
}

export class PgListenConnection {
  private current: Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  private listenedBefore = false;
  private lostLogged = false;

  constructor(
    private readonly options: ListenOptions,
    private readonly handlers: ListenHandlers,
    private readonly log: Logger,
  ) {}

  /** The listening connection, while there is one (for statements on it, like NOTIFY). */
  get client(): Client | undefined {
    return this.current;
  }

  /** Resolves once LISTEN works or the first attempt failed (it keeps retrying). */
  start(): Promise<void> {
    return this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const { options } = this;
    const client = new Client({
      connectionString: options.connectionString,
      application_name: options.applicationName,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
    });
    let ended = false;
    const lost = (why: string) => {
      if (ended) return;
      ended = true;
      if (this.current === client) this.current = undefined;
      if (this.closed) return;
      if (!this.lostLogged && this.listenedBefore) {
        this.lostLogged = true;
        this.log.warn(`${options.logPrefix}listen connection lost; reconnecting (${options.meanwhile})`, {
          reason: why,
        });
      }
      this.handlers.lost(why);
      this.scheduleReconnect();
    };
    client.on("error", (err) => lost(err.message));
    client.on("end", () => lost("connection ended"));
    client.on("notification", (n) => this.handlers.notification(n));
    try {
      await client.connect();
      await options.prepare?.(client);
      await client.query(`LISTEN ${options.channel}`);
    } catch (err) {
      this.log.debug(`${options.logPrefix}listen connection failed`, { error: (err as Error).message });
      lost((err as Error).message);
      await client.end().catch(() => undefined);
      return;
    }
    if (ended || this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.current = client;
    const again = this.listenedBefore;
    if (again) {
      this.log.info(`${options.logPrefix}listen connection restored`);
      this.lostLogged = false;
    }
    this.listenedBefore = true;
    this.handlers.listening(again);
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.connect();
    }, RECONNECT_MS).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    await this.current?.end().catch(() => undefined);
  }
}
