/**
 * Migrations and functions, applied at start.
 *
 * Migrations: numbered SQL files in migrations/ (NNNN_name.sql), append-only,
 * holding schema. Each runs in its own transaction with its ledger row
 * written first, so a migration is applied exactly once even when many
 * replicas start together.
 *
 * Functions: the SQL logic, one file per function (functions.ts), applied with
 * CREATE OR REPLACE after the migrations, in one transaction that also records
 * the release (release.ts) in agentstate_release.
 *
 * All of it happens in one session holding MIGRATION_LOCK, and starts by
 * comparing releases: a database at a newer release than this code's makes
 * the server refuse to start (nothing is changed); at the same release
 * nothing is done (no migration round trips, no function replaced); at an
 * older one (or none: a new database, or one from before releases were
 * recorded) the pending migrations and every function are applied.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Pool, PoolClient } from "pg";
import { checkout } from "./checkout";
import { FUNCTIONS_DIR, readFunctions, type SqlFunction } from "./functions";
import { contentSha256, RELEASE } from "./release";

/**
 * Session advisory lock key held while migrating: "agst" in ASCII. It
 * serialises concurrent starters (one applies, the others then find the
 * release recorded). The key must not change between releases, or an old and
 * a new replica starting together would not exclude each other. (The
 * two-key lock class 0x61737431, "ast1", in agentstate_kv_write is another
 * lock space.)
 */
export const MIGRATION_LOCK = 0x6167_7374;

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

export interface MigrateOptions {
  /** Where the function files are; default the build's (FUNCTIONS_DIR). */
  functionsDir?: string;
  /** The release number this code claims; default RELEASE.number (tests simulate other releases). */
  release?: number;
}

/** A database at a newer release than this server's, or at this release with other content. */
export class ReleaseMismatchError extends Error {
  override name = "ReleaseMismatchError";
}

/** The row agentstate_release holds. */
interface ReleaseRow {
  release: number;
  migration: number;
  sha256: string;
}

/**
 * Brings the database to this code's release; returns the names of the
 * migrations applied by this call (empty when the database was already there).
 * Throws ReleaseMismatchError, changing nothing, when the database is newer.
 */
export async function migrate(pool: Pool, dir: string, opts: MigrateOptions = {}): Promise<string[]> {
  const migrations = readMigrations(dir);
  const functions = readFunctions(opts.functionsDir ?? FUNCTIONS_DIR);
  const release = opts.release ?? RELEASE.number;
  const sha256 = contentSha256(migrations, functions);
  const { client, release: releaseClient } = await checkout(pool);
  try {
    // Migrations may legitimately run longer than request statements.
    await client.query("SET statement_timeout = 0");
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS agentstate_migrations (
           id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      // One row: the release the database's schema and functions are at.
      await client.query(
        `CREATE TABLE IF NOT EXISTS agentstate_release (
           id smallint PRIMARY KEY CHECK (id = 1), release integer NOT NULL, migration integer NOT NULL,
           sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const current = (
        await client.query<ReleaseRow>("SELECT release, migration, sha256 FROM agentstate_release WHERE id = 1")
      ).rows[0];
      if (current !== undefined && current.release > release) {
        throw new ReleaseMismatchError(
          `database is at release ${current.release}, this server is release ${release}; upgrade the server`,
        );
      }
      if (current !== undefined && current.release === release) {
        if (current.sha256 !== sha256) {
          throw new ReleaseMismatchError(
            `database is at release ${release} with other migrations or functions than this server's ` +
              `(sha256 ${current.sha256}, this server ${sha256}); a changed release must get a new number ` +
              "(src/store/postgres/release.ts)",
          );
        }
        return [];
      }
      const applied = await applyMigrations(client, migrations);
      await applyFunctions(client, functions, {
        release,
        migration: migrations.at(-1)?.id ?? 0,
        sha256,
      });
      return applied;
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
    }
  } finally {
    releaseClient();
  }
}

/** Applies the migrations not in the ledger, each in its own transaction; returns their names. */
async function applyMigrations(client: PoolClient, migrations: Migration[]): Promise<string[]> {
  const applied: string[] = [];
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
  return applied;
}

/** Creates or replaces every function and records the release, in one transaction. */
async function applyFunctions(client: PoolClient, functions: SqlFunction[], row: ReleaseRow): Promise<void> {
  await client.query("BEGIN");
  try {
    for (const f of functions) {
      try {
        await client.query(f.sql);
      } catch (err) {
        throw new Error(`function ${f.name} failed: ${(err as Error).message}`);
      }
    }
    await client.query(
      `INSERT INTO agentstate_release (id, release, migration, sha256) VALUES (1, $1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET release = $1, migration = $2, sha256 = $3, applied_at = now()`,
      [row.release, row.migration, row.sha256],
    );
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK");
    throw err;
  }
}
