/**
 * Runtime SQL: one parameterised statement per file in ./sql, each opening
 * with a header that names its parameters. The files are copied into the build
 * (scripts/copy-assets.mjs) and read once at start. Each is run as a named
 * prepared statement (named after its file), so Postgres parses and plans it
 * once per connection instead of on every call.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** A statement as pg's query() takes it: the name makes it a prepared statement. */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

const cache = new Map<string, Statement>();

export function sql(name: string): Statement {
  let st = cache.get(name);
  if (st === undefined) {
    st = Object.freeze({
      name: `agentstate_${name}`,
      text: readFileSync(join(__dirname, "sql", `${name}.sql`), "utf8"),
    });
    cache.set(name, st);
  }
  return st;
}
