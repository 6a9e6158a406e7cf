// Copies the non-TypeScript files the server loads at run time into dist/:
// SQL statements, Lua scripts, migrations and the protos (for reflection).
import { cpSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const copies = [
  ["src/store/postgres/sql", "dist/src/store/postgres/sql"],
  ["src/store/redis/lua", "dist/src/store/redis/lua"],
  ["migrations", "dist/migrations"],
  ["proto", "dist/proto"],
  ["src/gen/agentstate.binpb", "dist/src/gen/agentstate.binpb"],
  ["src/gen/health.binpb", "dist/src/gen/health.binpb"],
];
for (const [from, to] of copies) {
  if (existsSync(join(root, from))) cpSync(join(root, from), join(root, to), { recursive: true });
}
