/**
 * A server that cannot reach its database says so at error level, naming the
 * dependency, where it looked (host:port, never credentials) and why, and
 * exits 1 instead of starting half-connected. One case per cause an operator
 * meets: refused, unresolvable name, no answer, TLS, authentication, missing
 * database.
 */
import * as assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { freePort } from "../support/freePort";
import { getTestEnv } from "../support/TestEnv";
import { runToExit, SERVER_MAIN } from "../support/runToExit";

const SECRET = "s3cret-never-logged";

interface Failed {
  code: number | null;
  output: string;
  line: Record<string, unknown>;
}

/** Starts a server on `databaseUrl` and waits for it to give up. */
async function failToStart(databaseUrl: string): Promise<Failed> {
  const r = await runToExit(SERVER_MAIN, { DATABASE_URL: databaseUrl, LOG_FORMAT: "json" });
  const line = r.lines.find((l) => l.msg === "failed to start");
  if (!line) throw new Error(`no "failed to start" line:\n${r.output}`);
  return { code: r.code, output: r.output, line };
}

function assertNamed(f: Failed, target: string, reason: RegExp): void {
  assert.equal(f.code, 1);
  assert.equal(f.line.level, "error");
  assert.equal(f.line.dependency, "postgres");
  assert.equal(f.line.target, target);
  assert.match(String(f.line.reason), reason);
  assert.ok(typeof f.line.time === "string" && typeof f.line.pid === "number", "the line has time and pid");
  assert.ok(!f.output.includes(SECRET), "the password must never be logged");
}

describe("start-up errors name their cause", function () {
  this.timeout(120_000);

  it("connection refused", async () => {
    const port = await freePort();
    const f = await failToStart(`postgres://agent:${SECRET}@127.0.0.1:${port}/app`);
    assertNamed(f, `127.0.0.1:${port}`, /^connection refused/);
  });

  it("name not resolved", async () => {
    const f = await failToStart(`postgres://agent:${SECRET}@no-such-host.invalid:5432/app`);
    assertNamed(f, "no-such-host.invalid:5432", /^name not resolved/);
  });

  it("no answer (a port that accepts and says nothing): timed out", async () => {
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as { port: number }).port;
    try {
      const f = await failToStart(`postgres://agent:${SECRET}@127.0.0.1:${port}/app`);
      assertNamed(f, `127.0.0.1:${port}`, /^timed out/);
    } finally {
      silent.close();
    }
  });

  describe("against a real Postgres", () => {
    let host: string;

    before(async () => {
      const env = await getTestEnv();
      const u = new URL(env.pg.url("postgres"));
      host = `${u.hostname}:${u.port}`;
    });

    it("TLS required but not offered", async () => {
      const f = await failToStart(`postgres://postgres:${SECRET}@${host}/postgres?sslmode=require`);
      assertNamed(f, host, /^TLS: /);
    });

    it("authentication: a user the server refuses", async () => {
      const f = await failToStart(`postgres://no_such_user:${SECRET}@${host}/postgres`);
      assertNamed(f, host, /^authentication failed/);
    });

    it("a database that does not exist", async () => {
      const f = await failToStart(`postgres://postgres:${SECRET}@${host}/no_such_database`);
      assertNamed(f, host, /^database does not exist/);
    });
  });
});
