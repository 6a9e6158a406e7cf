import * as assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SCRIPT_REPLIES } from "../../src/store/redis/cacheReplies";
import { LUA_DIR } from "../../src/store/redis/cacheScripts";

/** The `local NAME = <integer>` declarations of a script (the build's copy, as the server loads it). */
function declaredReplies(lua: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of lua.matchAll(/^local ([A-Z][A-Z_]*) = (-?\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

describe("Lua reply codes: one name in TypeScript and in every script", () => {
  const files = readdirSync(LUA_DIR, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".lua"));

  it("every built script has its replies listed (and every listed script is built)", () => {
    assert.deepEqual([...files].sort(), Object.keys(SCRIPT_REPLIES).sort());
  });

  for (const [file, replies] of Object.entries(SCRIPT_REPLIES)) {
    it(`${file} declares exactly the names and values of cacheReplies.ts, and returns only names`, () => {
      const lua = readFileSync(join(LUA_DIR, file), "utf8");
      assert.deepEqual(declaredReplies(lua), { ...replies });
      assert.doesNotMatch(lua, /\breturn\s*\{?\s*-?\d/, "a bare number is returned");
    });
  }
});
