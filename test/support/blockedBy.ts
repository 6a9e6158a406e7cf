import { pgQuery } from "./pgQuery";

/** How many server backends of `url`'s database wait for a lock that the backend `pid` holds. */
export async function blockedBy(url: string, pid: number): Promise<number> {
  const rows = await pgQuery<{ n: number }>(
    url,
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'agentstate' AND $1 = ANY(pg_blocking_pids(pid))`,
    [pid],
  );
  return rows[0]?.n ?? 0;
}
