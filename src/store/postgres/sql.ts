/**
 * Runtime SQL: one parameterised statement per file in ./sql, each opening
 * with a header that names its parameters. The files are copied into the build
 * (scripts/copy-assets.mjs) and read once at start.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const cache = new Map<string, string>();

export function sql(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(join(__dirname, "sql", `${name}.sql`), "utf8");
    cache.set(name, text);
  }
  return text;
}
