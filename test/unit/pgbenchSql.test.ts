import * as assert from "node:assert/strict";
import * as path from "node:path";
import { pathToFileURL } from "node:url";

// A real dynamic import (tsc would turn `import()` into require(), which cannot load an ES module on every Node).
const importEsm = new Function("specifier", "return import(specifier)") as (s: string) => Promise<unknown>;

describe("bench/pgbench: the statements pgbench runs are the service's own", () => {
  it("every `-- src:` statement in bench/pgbench/*.sql matches src/store/postgres/sql (node bench/lib/pgbenchSql.mjs --write fixes it)", async () => {
    const lib = (await importEsm(pathToFileURL(path.join(__dirname, "../../../bench/lib/pgbenchSql.mjs")).href)) as {
      checkAll(): string[];
    };
    assert.deepEqual(lib.checkAll(), []);
  });
});
