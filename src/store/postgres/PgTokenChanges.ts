/**
 * PgTokenChanges: one LISTEN connection per replica on `agentstate_auth`
 * (token_revoke.sql and token_bootstrap.sql NOTIFY it with a token id at
 * commit; grant_add.sql and grant_revoke.sql with 'principal:' and a
 * principal's name), told to a TokenChangeListener so caches of verified
 * tokens and stored grants forget them at once, on every replica (guarantee
 * 8: revocation reaches every replica within a second).
 *
 * A lost connection may have missed notifications: the listener is reset
 * (forget everything, cache only briefly) while PgListenConnection reopens
 * it; once LISTEN works again it is reset once more (listening).
 */
import type { TokenChangeListener } from "../../domain/tokens";
import type { Logger } from "../../log/Logger";
import { PgListenConnection } from "./PgListenConnection";

/** The payload of a stored-grants change: this, then the principal's name (token ids never hold a ":"). */
const PRINCIPAL = "principal:";

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
          if (!n.payload) return;
          if (n.payload.startsWith(PRINCIPAL)) listener.grantsChanged(n.payload.slice(PRINCIPAL.length));
          else listener.changed(n.payload);
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
