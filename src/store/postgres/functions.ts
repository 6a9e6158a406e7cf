/**
 * SQL functions: the logic that runs in Postgres, one file per function in
 * ./functions (README.md there says the rules). Migrations keep schema; these
 * files are applied with CREATE OR REPLACE after them (migrate.ts), in the
 * order readFunctions returns: every function after the ones its
 * `-- Requires:` header line names, otherwise by name, so the order is the
 * same on every start. A file `<function>.<overload>.sql` creates another
 * signature of the function `<function>` (one a previous release's replicas
 * still call: README.md there).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Where the build keeps the function files (copied by scripts/copy-assets.mjs). */
export const FUNCTIONS_DIR = join(__dirname, "functions");

export interface SqlFunction {
  /** Its file's name without `.sql`: the function's name, or `<function>.<overload>` for another signature of it. */
  name: string;
  /** The function it creates (pg_proc.proname). */
  creates: string;
  /** The files of this folder it calls (its `-- Requires:` line). */
  requires: string[];
  sql: string;
}

const FILE = /^((agentstate_[a-z0-9_]+)(?:\.[a-z0-9_]+)?)\.sql$/;
const REQUIRES = /^-- Requires: (.+)$/m;

/** Reads every function file of `dir`, dependencies first. Throws on a malformed file or a cycle. */
export function readFunctions(dir: string = FUNCTIONS_DIR): SqlFunction[] {
  const byName = new Map<string, SqlFunction>();
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith(".sql")) continue;
    const m = FILE.exec(file);
    if (m === null)
      throw new Error(`functions/${file}: a function file is named agentstate_<name>.sql (or <name>.<overload>.sql)`);
    const name = m[1]!;
    const creates = m[2]!;
    const sql = readFileSync(join(dir, file), "utf8");
    if (!new RegExp(`^CREATE OR REPLACE FUNCTION ${creates}\\(`, "m").test(sql)) {
      throw new Error(`functions/${file}: must create the function ${creates} with CREATE OR REPLACE FUNCTION`);
    }
    const requires = (REQUIRES.exec(sql)?.[1] ?? "").split(",").flatMap((s) => (s.trim() === "" ? [] : [s.trim()]));
    byName.set(name, { name, creates, requires, sql });
  }
  const ordered: SqlFunction[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (f: SqlFunction, path: string[]): void => {
    if (state.get(f.name) === "done") return;
    if (state.get(f.name) === "visiting")
      throw new Error(`functions: cycle in Requires: ${[...path, f.name].join(" -> ")}`);
    state.set(f.name, "visiting");
    for (const r of [...f.requires].sort()) {
      const dep = byName.get(r);
      if (dep === undefined) throw new Error(`functions/${f.name}.sql requires ${r}, which has no file`);
      visit(dep, [...path, f.name]);
    }
    state.set(f.name, "done");
    ordered.push(f);
  };
  for (const f of byName.values()) visit(f, []);
  return ordered;
}
