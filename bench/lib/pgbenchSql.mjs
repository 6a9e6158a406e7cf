// Keeps bench/pgbench/*.sql identical to the SQL the service runs.
//
// In a pgbench script, a line
//   -- src: kv_put [gset] | $1='pgbench' | $2=convert_to('hot', 'UTF8') | ...
// says that the statement after it is src/store/postgres/sql/kv_put.sql with
// each $N replaced by the given expression (`@rep(10) expr` stands for
// ARRAY[expr, expr, ... 10 times], with # in expr replaced by 1..10); `[gset]` ends it with pgbench's \gset
// instead of ";". check() compares every such statement with its source
// (whitespace-insensitive); `node bench/lib/pgbenchSql.mjs --write` rewrites
// the statement bodies from the sources.
import * as fs from "node:fs";
import * as path from "node:path";
import console from "node:console";
import process from "node:process";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PGBENCH_DIR = path.resolve(HERE, "..", "pgbench");
export const SQL_DIR = path.resolve(HERE, "..", "..", "src", "store", "postgres", "sql");

const MARKER = /^-- src: ([a-z0-9_]+)( \[gset\])?((?: \| \$\d+=.*)*)\s*$/;

function expand(expr) {
  const m = /^@rep\((\d+)\) (.*)$/.exec(expr);
  if (!m) return expr;
  return `ARRAY[${Array.from({ length: Number(m[1]) }, (_, i) => m[2].replaceAll("#", String(i + 1))).join(", ")}]`;
}

/** The source statement with parameters substituted, as lines (comments dropped). */
function render(name, params, sqlDir) {
  const text = fs.readFileSync(path.join(sqlDir, `${name}.sql`), "utf8");
  const lines = text
    .split("\n")
    .filter((l) => !l.trim().startsWith("--") && l.trim() !== "")
    .map((l) =>
      l.replace(/\$(\d+)/g, (_, n) => {
        if (!(n in params)) throw new Error(`${name}.sql uses $${n}, which its "-- src:" line does not set`);
        return params[n];
      }),
    );
  return lines;
}

function parseMarker(line) {
  const m = MARKER.exec(line);
  if (!m) return undefined;
  const params = {};
  for (const part of m[3].split(" | ").slice(1)) {
    const eq = part.indexOf("=");
    params[part.slice(1, eq)] = expand(part.slice(eq + 1));
  }
  return { name: m[1], gset: m[2] !== undefined, params };
}

const norm = (s) => s.replace(/\s+/g, " ").trim();

/**
 * Checks (or, with write=true, rewrites) one script. Returns a list of
 * problems (empty when every statement matches its source).
 */
export function syncScript(file, { write = false, sqlDir = SQL_DIR } = {}) {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  const out = [];
  const problems = [];
  let markers = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    out.push(line);
    if (!line.startsWith("-- src:")) continue;
    const mk = parseMarker(line);
    if (!mk) {
      problems.push(`${path.basename(file)}:${i + 1}: unreadable "-- src:" line`);
      continue;
    }
    markers++;
    // The statement: up to the first line ending with ";" or "\gset".
    let j = i + 1;
    while (j < lines.length && !/(;|\\gset)\s*$/.test(lines[j])) j++;
    if (j >= lines.length) {
      problems.push(`${path.basename(file)}:${i + 1}: statement after the marker never ends`);
      break;
    }
    const body = lines.slice(i + 1, j + 1).join("\n");
    const want = render(mk.name, mk.params, sqlDir);
    const end = mk.gset ? " \\gset" : ";";
    const wantText = want.join("\n") + end;
    if (norm(body) !== norm(wantText)) {
      problems.push(`${path.basename(file)}:${i + 1}: statement differs from src/store/postgres/sql/${mk.name}.sql`);
    }
    out.push(...(write ? wantText.split("\n") : lines.slice(i + 1, j + 1)));
    i = j;
  }
  if (markers === 0) problems.push(`${path.basename(file)}: no "-- src:" statements`);
  if (write) fs.writeFileSync(file, out.join("\n"));
  return write ? [] : problems;
}

/** Checks every bench/pgbench/*.sql and experiments/*.sql; returns the problems found. */
export function checkAll(opts = {}) {
  return [PGBENCH_DIR, path.join(PGBENCH_DIR, "experiments")].flatMap((dir) =>
    fs
      .readdirSync(dir)
      .filter((f) => f.endsWith(".sql"))
      .flatMap((f) => syncScript(path.join(dir, f), opts)),
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const write = process.argv.includes("--write");
  const problems = checkAll({ write });
  if (write) console.log("bench/pgbench/*.sql statement bodies rewritten from src/store/postgres/sql/");
  else if (problems.length === 0) console.log("bench/pgbench/*.sql match src/store/postgres/sql/");
  for (const p of problems) console.error(p);
  process.exit(problems.length === 0 ? 0 : 1);
}
