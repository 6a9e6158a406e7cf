/**
 * A server that cannot reach its database says so at error level, naming the
 * dependency, where it looked (host:port, never credentials) and why, and
 * exits 1 instead of starting half-connected. One case per cause an operator
 * meets: refused, unresolvable name, no answer, TLS, authentication, missing
 * database.
 */
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:net";
import { resolve } from "node:path";
import { freePort } from "../support/freePort";
import { getTestEnv } from "../support/TestEnv";

const MAIN = resolve(__dirname, "../../src/main.js");
const SECRET = "s3cret-never-logged";

interface Failed {
  code: number | null;
  output: string;
  line: Record<string, unknown>;
}

/** Starts a server on `databaseUrl` and waits for it to give up. */
function failToStart(databaseUrl: string): Promise<Failed> {
  return new Promise((done, reject) => {
    execFile(
      process.execPath,
      [MAIN],
      {
        env: {
          PATH: process.env.PATH ?? "",
          DATABASE_URL: databaseUrl,
          AGENTSTATE_PORT: "0",
          AGENTSTATE_METRICS_PORT: "-1",
          LOG_FORMAT: "json",
        },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        const output = stdout + stderr;
        const line = output
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l.msg === "failed to start");
        if (!line) return reject(new Error(`no "failed to start" line:\n${output}`));
        done({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, output, line });
      },
    );
  });
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
