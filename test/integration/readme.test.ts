/**
 * The README's quick start works as written: the grpcurl block between the
 * quickstart markers runs verbatim (only the port is rewritten) against a
 * server in the embedded default (no DATABASE_URL, no Redis), through server
 * reflection alone.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { findGrpcurl } from "../support/grpcurl";
import { ServerProcess } from "../support/ServerProcess";

const REPO = resolve(__dirname, "../../..");

/** The recipes block, as one bash script. */
function recipesScript(): string {
  const md = readFileSync(join(REPO, "README.md"), "utf8");
  const block = /<!-- recipes:begin -->\s*```sh\n([\s\S]*?)```\s*<!-- recipes:end -->/.exec(md);
  assert.ok(block, "README has no recipes block");
  return block[1]!;
}

/** The shell commands of the quick start block, continuation lines joined. */
function quickstartCommands(): string[] {
  const md = readFileSync(join(REPO, "README.md"), "utf8");
  const block = /<!-- quickstart:begin -->\s*```sh\n([\s\S]*?)```\s*<!-- quickstart:end -->/.exec(md);
  assert.ok(block, "README has no quickstart block");
  return block[1]!
    .replace(/\\\n\s*/g, "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

/** The stale-write reply the README shows. */
function staleReplyExample(): unknown {
  const md = readFileSync(join(REPO, "README.md"), "utf8");
  const block = /<!-- stale-reply:begin -->\s*```json\n([\s\S]*?)```\s*<!-- stale-reply:end -->/.exec(md);
  assert.ok(block, "README has no stale-reply block");
  return JSON.parse(block[1]!);
}

/** Every member `expected` shows is in `actual` with the same value (objects compared member by member). */
function assertSubset(actual: unknown, expected: unknown, path: string): void {
  if (expected !== null && typeof expected === "object") {
    assert.ok(
      actual !== null && typeof actual === "object",
      `${path}: expected an object, got ${JSON.stringify(actual)}`,
    );
    for (const [k, v] of Object.entries(expected))
      assertSubset((actual as Record<string, unknown>)[k], v, `${path}.${k}`);
  } else {
    assert.deepEqual(actual, expected, path);
  }
}

describe("README quick start against the embedded default", function () {
  this.timeout(120_000);
  let server: ServerProcess;
  let dataDir: string;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "agentstate-readme-"));
    chmodSync(dataDir, 0o755); // the embedded Postgres runs as user postgres when we are root
    server = await ServerProcess.start({
      AGENTSTATE_DATA_DIR: join(dataDir, "state"),
      DATABASE_URL: "",
      REDIS_URL: "",
    });
  });
  after(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("runs every command of the block as written", () => {
    const grpcurl = findGrpcurl();
    const cmds = quickstartCommands();
    assert.ok(cmds.length >= 7, `expected the full quick start, got ${cmds.length} commands`);
    const outputs = cmds.map((cmd) => {
      const line = cmd.replaceAll("127.0.0.1:50051", server.address).replace(/^grpcurl /, `'${grpcurl}' `);
      return execFileSync("bash", ["-c", line], { encoding: "utf8" });
    });
    const [list, describe, health, create, get, update, stale, listKeys] = outputs;
    assert.match(list!, /agentstate\.v1\.KeyValueService/);
    assert.match(list!, /grpc\.health\.v1\.Health/);
    assert.match(describe!, /CompareAndSetRequest is a message/);
    assert.match(describe!, /idempotency_key/);
    assert.match(health!, /"SERVING"/);
    assert.equal(JSON.parse(create!).applied, true);
    const g = JSON.parse(get!);
    assert.equal(g.found, true);
    assert.equal(g.item.version, "1");
    assert.equal(Buffer.from(g.item.value, "base64").toString(), "hello");
    assert.ok(Number(g.header.revision) >= 1);
    assert.equal(JSON.parse(update!).item.version, "2");
    const s = JSON.parse(stale!);
    // The README shows this reply (timestamps left out): every field it shows is the real one.
    assertSubset(s, staleReplyExample(), "stale reply");
    assert.equal(s.applied, undefined, "a stale write must not apply");
    assert.equal(s.item.version, "2");
    assert.equal(Buffer.from(s.item.value, "base64").toString(), "world");
    assert.deepEqual(
      JSON.parse(listKeys!).items.map((i: { key: string }) => i.key),
      ["cart/42"],
    );
    // The lock and event recipes, as one script (they share shell variables).
    const script = "set -euo pipefail\n" + recipesScript().replaceAll("127.0.0.1:50051", server.address);
    const out = execFileSync("bash", ["-c", script], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${dirname(grpcurl)}:${process.env["PATH"]}` },
    });
    assert.match(out, /"acquired": true/);
    assert.match(out, /"fencingToken": "\d+"/);
    assert.match(out, /"applied": true/);
    assert.match(out, /"released": true/);
    assert.match(out, /"firstVersion": "1"/);
    assert.match(out, /"type": "item_added"/);
    assert.match(out, /"type": "checkout_started"/);
    assert.match(out, /"caughtUp"/);
    // "Their ids make a retry of this call a no-op": the recipes again, the append replayed.
    const again = execFileSync("bash", ["-c", script], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${dirname(grpcurl)}:${process.env["PATH"]}` },
    });
    assert.match(again, /"replayed": true/);
    assert.match(again, /"firstVersion": "1"/);
    const logs = server.logs();
    assert.ok(logs.some((l) => l["msg"] === "listening" && l["database"] === "embedded"));
  });
});
