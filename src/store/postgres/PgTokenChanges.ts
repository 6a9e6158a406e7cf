/**
 * PgTokenChanges: one LISTEN connection per replica on `agentstate_auth`
 * (token_revoke.sql and token_bootstrap.sql NOTIFY it with a token id at
 * commit), told to a TokenChangeListener so caches of verified tokens forget
 * a revoked token at once, on every replica (guarantee 8: revocation reaches
 * every replica within a second).
 *
 * A lost connection may have missed notifications: the listener is reset
 * (forget everything, cache only briefly) while PgListenConnection reopens
 * it; once LISTEN works again it is reset once more (listening).
 */
import type { TokenChangeListener } from "../../domain/tokens";
import type { Logger } from "../../log/Logger";
import { PgListenConnection } from "./PgListenConnection";

export class PgTokenChanges {
  private readonly connection: PgListenConnection;

  constructor(connectionString: string, listener: TokenChangeListener, log: Logger) {
    this.connection = new PgListenConnection(
      {
        connectionString,
        applicationName: "agentstate-auth-listen",
        channel: "agentstate_auth",
        logPrefix: "token ",
        meanwhile: "tokens cached briefly only",
      },
      {
        notification: (n) => {
          if (n.payload) listener.changed(n.payload);
        },
        listening: () => listener.reset(true),
        lost: () => listener.reset(false),
      },
      log,
    );
  }

  /** Resolves once LISTEN works (or the first attempt failed: it keeps retrying). */
  start(): Promise<void> {
    return this.connection.start();
  }

  close(): Promise<void> {
    return this.connection.close();
  }
}
