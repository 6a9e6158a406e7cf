import { eventually } from "./eventually";
import { pgQuery } from "./pgQuery";

/**
 * Pid of a Postgres backend of `dbUrl`'s database that waits for a lock (a
 * server write blocked by holdRowLock), once at least `count` of them wait.
 */
export async function backendWaitingOnLock(dbUrl: string, count = 1): Promise<number> {
  return eventually(
    "a server backend waiting for the row lock",
    async () => {
      const rows = await pgQuery<{ pid: number }>(
        dbUrl,
        `SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
      );
      return rows.length >= count ? rows[0]?.pid : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 20 },
  );
}
