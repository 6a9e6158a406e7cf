/**
 * Migrations: numbered SQL files in migrations/ (NNNN_name.sql), append-only,
 * applied at start. A session advisory lock serialises concurrent starters;
 * each file runs in its own transaction with its ledger row written first, so
 * a migration is applied exactly once even when many replicas start together.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Pool } from "pg";
import { checkout } from "./checkout";

const LOCK_ID = 0x6167_7374; // "agst"

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export function readMigrations(dir: string): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({
      id: Number(f.slice(0, 4)),
      name: f.replace(/\.sql$/, ""),
      sql: readFileSync(join(dir, f), "utf8"),
    }));
}

/** Applies pending migrations; returns the names applied by this call. */
export async function migrate(pool: Pool, dir: string): Promise<string[]> {
  const migrations = readMigrations(dir);
  const { client, release } = await checkout(pool);
  const applied: string[] = [];
  try {
    // Migrations may legitimately run longer than request statements.
    await client.query("SET statement_timeout = 0");
    await client.query("SELECT pg_advisory_lock($1)", [LOCK_ID]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS agentstate_migrations (
           id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      for (const m of migrations) {
        await client.query("BEGIN");
        try {
          const ins = await client.query(
            "INSERT INTO agentstate_migrations (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id",
            [m.id, m.name],
          );
          if (ins.rowCount === 1) {
            await client.query(m.sql);
            applied.push(m.name);
          }
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK");
          throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
        }
      }
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [LOCK_ID]).catch(() => undefined);
    }
  } finally {
    release();
  }
  return applied;
}
