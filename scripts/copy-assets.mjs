// Copies the non-TypeScript files the server loads at run time into the
// build: SQL statements, SQL functions, Lua scripts, migrations and the protos
// (for reflection). A copied folder replaces its old copy, so a file removed
// from the source does not linger in the build (the server applies every
// function file it finds). Run as a script it copies into dist/; the bench's
// private builds call copyAssets with their own output directory.
import { cpSync, existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** [source, destination under the output directory], both relative. */
export const ASSETS = [
  ["src/store/postgres/sql", "src/store/postgres/sql"],
  ["src/store/postgres/functions", "src/store/postgres/functions"],
  ["src/store/redis/lua", "src/store/redis/lua"],
  ["migrations", "migrations"],
  ["proto", "proto"],
  ["src/gen/agentstate.binpb", "src/gen/agentstate.binpb"],
  ["src/gen/health.binpb", "src/gen/health.binpb"],
];

/** Copies every asset of the checkout at `from` into the build directory `outDir`. */
export function copyAssets(outDir, from = root) {
  for (const [src, dest] of ASSETS) {
    if (!existsSync(join(from, src))) continue;
    rmSync(join(outDir, dest), { recursive: true, force: true });
    cpSync(join(from, src), join(outDir, dest), { recursive: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) copyAssets(join(root, "dist"));
