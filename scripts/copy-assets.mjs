// Copies the non-TypeScript files the server loads at run time into dist/:
// SQL statements, SQL functions, Lua scripts, migrations and the protos (for
// reflection). A copied folder replaces its old copy, so a file removed from
// the source does not linger in the build (the server applies every function
// file it finds).
import { cpSync, existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const copies = [
  ["src/store/postgres/sql", "dist/src/store/postgres/sql"],
  ["src/store/postgres/functions", "dist/src/store/postgres/functions"],
  ["src/store/redis/lua", "dist/src/store/redis/lua"],
  ["migrations", "dist/migrations"],
  ["proto", "dist/proto"],
  ["src/gen/agentstate.binpb", "dist/src/gen/agentstate.binpb"],
  ["src/gen/health.binpb", "dist/src/gen/health.binpb"],
];
for (const [from, to] of copies) {
  if (!existsSync(join(root, from))) continue;
  rmSync(join(root, to), { recursive: true, force: true });
  cpSync(join(root, from), join(root, to), { recursive: true });
}
