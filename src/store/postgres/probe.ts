/**
 * The first contact with Postgres at start: one round trip, so a server that
 * cannot reach its truth says so at once, naming where and why
 * (DependencyUnreachableError), instead of failing later on a generic
 * "database unavailable".
 */
import type { Pool } from "pg";
import { connectFailureReason, DependencyUnreachableError, urlTarget } from "../../errors/startup";

export async function probePostgres(pool: Pool, url: string, dependency = "postgres"): Promise<void> {
  try {
    await pool.query("SELECT 1");
  } catch (err) {
    throw new DependencyUnreachableError(dependency, urlTarget(url, 5432), connectFailureReason(err));
  }
}
