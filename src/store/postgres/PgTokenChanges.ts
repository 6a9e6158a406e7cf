/**
 * PgTokenChanges: one LISTEN connection per replica on `agentstate_auth`
 * (token_revoke.sql and token_bootstrap.sql NOTIFY it with a token id at
 * commit; grant_add.sql and grant_revoke.sql with 'principal:' and a
 * principal's name), told to a TokenChangeListener so caches of verified
 * tokens and stored grants forget them at once, on every replica (guarantee
 * 8: revocation reaches every replica within a second).
 *
 * A lost connection may have missed notifications: the listener is reset
 * (forget everything, cache only briefly) and the connection reopened every
 * RECONNECT_MS; once LISTEN works again it is reset once more (listening).
 */
import { Client } from "pg";
import type { TokenChangeListener } from "../../domain/tokens";
import type { Logger } from "../../log/Logger";
import { KEEPALIVE_INITIAL_DELAY_MS } from "./createPool";

const RECONNECT_MS = 500;
/** The payload of a stored-grants change: this, then the principal's name (token ids never hold a ":"). */
const PRINCIPAL = "principal:";
const CONNECT_TIMEOUT_MS = 5000;

export class PgTokenChanges {
  private client: Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly listener: TokenChangeListener,
    private readonly log: Logger,
  ) {}

  /** Resolves once LISTEN works (or the first attempt failed: it keeps retrying). */
  start(): Promise<void> {
    return this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new Client({
      connectionString: this.connectionString,
      application_name: "agentstate-auth-listen",
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
    });
    let ended = false;
    const lost = (why: string) => {
      if (ended) return;
      ended = true;
      const wasListening = this.client === client;
      if (wasListening) this.client = undefined;
      if (this.closed) return;
      if (wasListening)
        this.log.warn("token listen connection lost; reconnecting (tokens cached briefly only)", { reason: why });
      this.listener.reset(false);
      this.scheduleReconnect();
    };
    client.on("error", (err) => lost(err.message));
    client.on("end", () => lost("connection ended"));
    client.on("notification", (n) => {
      if (!n.payload) return;
      if (n.payload.startsWith(PRINCIPAL)) this.listener.grantsChanged(n.payload.slice(PRINCIPAL.length));
      else this.listener.changed(n.payload);
    });
    try {
      await client.connect();
      await client.query("LISTEN agentstate_auth");
    } catch (err) {
      lost((err as Error).message);
      await client.end().catch(() => undefined);
      return;
    }
    if (ended || this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.listener.reset(true);
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
    await this.client?.end().catch(() => undefined);
  }
}
