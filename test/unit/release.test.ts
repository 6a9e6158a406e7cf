import * as assert from "node:assert/strict";
import * as path from "node:path";
import { readFunctions } from "../../src/store/postgres/functions";
import { readMigrations } from "../../src/store/postgres/migrate";
import { contentSha256, RELEASE } from "../../src/store/postgres/release";

// This file compiles to dist/test/unit/: the repo is three levels up, the build two.
const REPO = path.resolve(__dirname, "../../..");
const BUILD = path.resolve(__dirname, "../..");

describe("store/postgres release: the number names the content", () => {
  const sha = contentSha256(
    readMigrations(path.join(REPO, "migrations")),
    readFunctions(path.join(REPO, "src/store/postgres/functions")),
  );

  it("RELEASE.sha256 is the hash of migrations/ and functions/ (a change there is a new release)", () => {
    assert.equal(
      RELEASE.sha256,
      sha,
      `migrations/ or src/store/postgres/functions/ changed: in src/store/postgres/release.ts set ` +
        `number to ${RELEASE.number + 1} (unless this release was never deployed) and sha256 to "${sha}"`,
    );
  });

  it("the build carries the same content", () => {
    assert.equal(
      contentSha256(
        readMigrations(path.join(BUILD, "migrations")),
        readFunctions(path.join(BUILD, "src/store/postgres/functions")),
      ),
      sha,
    );
  });

  it("the hash tells migrations from functions and file boundaries apart", () => {
    const a = contentSha256([{ name: "x", sql: "ab" }], []);
    assert.notEqual(a, contentSha256([], [{ name: "x", sql: "ab" }]));
    assert.notEqual(
      a,
      contentSha256(
        [
          { name: "x", sql: "a" },
          { name: "y", sql: "b" },
        ],
        [],
      ),
    );
    assert.equal(a, contentSha256([{ name: "x", sql: "ab" }], []));
  });
});
