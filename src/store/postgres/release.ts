/**
 * The schema release: one number for the migrations and SQL functions this
 * code carries, recorded in the database (agentstate_release) by the replica
 * that applies them. Replicas of a rolling upgrade compare it at start
 * (migrate.ts): an older replica refuses to start rather than run against a
 * schema it does not know or replace newer functions with its older ones.
 *
 * Bump `number` with every change to migrations/ or functions/, and set
 * `sha256` to the new content hash: test/unit/release.test.ts fails (and
 * prints the hash) until both are done.
 */
import { createHash } from "node:crypto";

export interface Release {
  number: number;
  /** sha256 of the migrations and functions of this release (contentSha256). */
  sha256: string;
}

export const RELEASE: Release = Object.freeze({
  number: 8,
  sha256: "aea3b05f5dfe0f71fbf6acc20538e98da6ed142df4257a4897616af601eb4b80",
});

/** One SQL file of the release: a migration or a function. */
interface SqlFile {
  name: string;
  sql: string;
}

/** The hash that identifies a release's content: every migration, then every function, in order. */
export function contentSha256(migrations: readonly SqlFile[], functions: readonly SqlFile[]): string {
  const h = createHash("sha256");
  for (const [kind, files] of [
    ["migration", migrations],
    ["function", functions],
  ] as const) {
    for (const f of files) h.update(`${kind} ${f.name} ${Buffer.byteLength(f.sql)}\n`).update(f.sql);
  }
  return h.digest("hex");
}
