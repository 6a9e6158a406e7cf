/**
 * The first contact with Postgres at start: one round trip, so a server that
 * cannot reach its truth says so at once, naming where and why
 * (DependencyUnreachableError), instead of failing later on a generic
 * "database unavailable".
 */
import { Client, type Pool } from "pg";
import { connectFailureReason, DependencyUnreachableError, urlTarget } from "../../errors/startup";

export async function probePostgres(pool: Pool, url: string, dependency = "postgres"): Promise<void> {
  try {
    await pool.query("SELECT 1");
  } catch (err) {
    throw new DependencyUnreachableError(dependency, urlTarget(url, 5432), connectFailureReason(err));
  }
}

/**
 * The running check behind grpc.health.v1: one `SELECT 1` on a connection of
 * its own (never the pool, so a busy pool does not read as a dead database),
 * bounded by `timeoutMs` end to end (connect included). A failed or late
 * round trip drops the connection; the next check opens a new one, so a
 * frozen or partitioned Postgres shows as a failure, not a hang.
 */
export class PgLivenessProbe {
  private client: Client | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly timeoutMs: number,
  ) {}

  async check(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("postgres did not answer in time")), this.timeoutMs);
    });
    try {
      await Promise.race([this.roundTrip(), timeout]);
    } catch (err) {
      this.drop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async roundTrip(): Promise<void> {
    if (!this.client) {
      const client = new Client({
        connectionString: this.connectionString,
        application_name: "agentstate-health",
        connectionTimeoutMillis: this.timeoutMs,
        query_timeout: this.timeoutMs,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10000,
      });
      client.on("error", () => undefined);
      this.client = client;
      await client.connect();
    }
    await this.client.query("SELECT 1");
  }

  private drop(): void {
    const c = this.client;
    this.client = undefined;
    // Not awaited: a frozen server never answers the goodbye.
    if (c) void c.end().catch(() => undefined);
  }

  close(): void {
    this.drop();
  }
}
