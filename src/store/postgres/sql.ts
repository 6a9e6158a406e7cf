/**
 * Runtime SQL: one parameterised statement per file in ./sql, each opening
 * with a header that names its parameters (a file may end by naming the file
 * its statement goes on in: statementText). The files are copied into the build
 * (scripts/copy-assets.mjs) and read once at start. Each is run as a named
 * prepared statement (named after its file), so Postgres parses and plans it
 * once per connection instead of on every call.
 *
 * A statement that calls a function with many parameters names them
 * (`agentstate_kv_write(p_ns => $1::text[], ...)`): byName() then builds the
 * values from an object keyed by those same names, so the order is declared
 * once, in the statement, and TypeScript and SQL meet by name, not position.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Pool, QueryResult, QueryResultRow } from "pg";
import { translatePgError } from "./pgErrors";

/** A statement as pg's query() takes it: the name makes it a prepared statement. */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

const cache = new Map<string, Statement>();

/** Runs a statement on the pool; a driver error comes back as the domain error translatePgError makes of it. */
export async function runStatement<R extends QueryResultRow>(
  pool: Pool,
  st: Statement,
  values: unknown[],
): Promise<QueryResult<R>> {
  try {
    return await pool.query<R>(st, values);
  } catch (err) {
    throw translatePgError(err);
  }
}

/** A line that ends a statement's file where another file's statement goes on. */
const CONTINUED = /^-- continued in: ([a-z0-9_]+)\s*$/m;

/**
 * A statement's text: its file, and where the file ends with `-- continued
 * in: NAME`, NAME.sql after it without its opening comment (statements that
 * differ only in a first CTE share the rest: checkpoint_get_latest.sql,
 * checkpoint_list.sql, then checkpoint_rows.sql).
 */
function statementText(name: string, seen: readonly string[] = []): string {
  if (seen.includes(name)) throw new Error(`sql/${name}.sql: continued in itself (${[...seen, name].join(" -> ")})`);
  const text = readFileSync(join(__dirname, "sql", `${name}.sql`), "utf8");
  const m = CONTINUED.exec(text);
  if (m === null) return text;
  const rest = statementText(m[1]!, [...seen, name]).replace(/^(--.*\n)+/, "");
  return text.slice(0, m.index) + rest;
}

export function sql(name: string): Statement {
  let st = cache.get(name);
  if (st === undefined) {
    st = Object.freeze({ name: `agentstate_${name}`, text: statementText(name) });
    cache.set(name, st);
  }
  return st;
}

const paramNamesCache = new Map<string, readonly string[]>();

/**
 * The names a statement binds, in $N order: each `p_name => $N` or
 * `$N::type AS p_name` (comments ignored). Throws unless every $N from 1 up is
 * bound exactly once.
 */
export function paramNames(st: Statement): readonly string[] {
  let names = paramNamesCache.get(st.name);
  if (names === undefined) {
    const text = st.text.replace(/--.*$/gm, "");
    const found: string[] = [];
    // `p_name => $N` (a function's parameter) or `$N::type AS p_name` (a
    // value the statement uses beside the function, e.g. the audit trail's).
    for (const m of text.matchAll(/\b(p_[a-z0-9_]+)\s*=>\s*\$(\d+)|\$(\d+)::[a-z0-9_[\]]+\s+AS\s+(p_[a-z0-9_]+)/g)) {
      const i = Number(m[2] ?? m[3]) - 1;
      if (found[i] !== undefined) throw new Error(`${st.name}: $${i + 1} is bound twice`);
      found[i] = (m[1] ?? m[4])!;
    }
    // A bound $N may be used again (e.g. `$1::text[]` for the audit row's namespace).
    const uses = new Set([...text.matchAll(/\$\d+/g)].map((m) => m[0])).size;
    if (found.length === 0 || uses !== found.length || Array.from(found, (n) => n === undefined).includes(true)) {
      throw new Error(`${st.name}: every parameter must be passed by name (p_name => $N), $1..$N once each`);
    }
    names = Object.freeze(found);
    paramNamesCache.set(st.name, names);
  }
  return names;
}

/** The positional values for a statement whose parameters are named, from an object with exactly those names. */
export function byName(st: Statement, params: object): unknown[] {
  const names = paramNames(st);
  const values = params as Readonly<Record<string, unknown>>;
  if (Object.keys(values).length !== names.length || !names.every((n) => n in values)) {
    throw new Error(`${st.name} takes ${names.join(", ")}; given ${Object.keys(values).join(", ")}`);
  }
  return names.map((n) => values[n]);
}
