/**
 * `npm start` is what a newcomer runs first, and stops with Ctrl-C or `kill`.
 * Stopping it must stop everything under it: the server and its embedded
 * Postgres, with nothing re-parented and left running.
 */
import * as assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { exitCleanups } from "../support/childProcesses";
import { childPids, descendantPids, killQuietly, pidAlive } from "../support/procfs";

const REPO = resolve(__dirname, "../../..");

interface Started {
  npm: ChildProcess;
  /** The server's pid, from its "listening" line. */
  serverPid: number;
  /** The processes under npm once the server listens (the server, the embedded Postgres). */
  tree: number[];
  lines: string[];
}

async function startNpmStart(dataDir: string): Promise<Started> {
  const npm = spawn("npm", ["start", "--", "--port", "0", "--metrics-port=-1", "--data-dir", dataDir], {
    cwd: REPO,
    env: { ...process.env, DATABASE_URL: "", REDIS_URL: "", REDLOCK_URLS: "", LOG_FORMAT: "json" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const tree = () => (npm.pid === undefined ? [] : [npm.pid, ...descendantPids(npm.pid)]);
  // Never leave the tree behind, whatever the test does.
  const killTree = () => tree().forEach((p) => killQuietly(p, "SIGKILL"));
  exitCleanups.add(killTree);
  npm.once("exit", () => exitCleanups.delete(killTree));
  const lines: string[] = [];
  createInterface({ input: npm.stderr! }).on("line", (l) => lines.push(l));
  const listening = await new Promise<Record<string, unknown>>((resolveLine, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line in 90 s:\n${lines.join("\n")}`)), 90_000);
    npm.once("exit", (code) => reject(new Error(`npm start exited (${code}):\n${lines.join("\n")}`)));
    createInterface({ input: npm.stdout! }).on("line", (l) => {
      lines.push(l);
      if (!l.startsWith("{")) return;
      const o = JSON.parse(l) as Record<string, unknown>;
      if (o.msg === "listening") {
        clearTimeout(timer);
        resolveLine(o);
      }
    });
  });
  const serverPid = Number(listening.pid);
  assert.ok(pidAlive(serverPid));
  return { npm, serverPid, tree: tree(), lines };
}

describe("npm start: stopping it stops everything under it", function () {
  this.timeout(180_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "agentstate-npm-start-"));
    chmodSync(dir, 0o755); // the embedded Postgres runs as user postgres when we are root
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`${signal} to npm stops the server and its embedded Postgres`, async () => {
      const s = await startNpmStart(join(dir, signal));
      // The server is npm's own child (no shell in between), and the embedded Postgres runs under it.
      assert.ok(childPids(s.npm.pid!).includes(s.serverPid), `server ${s.serverPid} is not npm's child`);
      assert.ok(s.tree.length >= 3, `expected npm, the server and Postgres, got ${s.tree.join(",")}`);
      const exited = new Promise<number | null>((r) => s.npm.once("exit", (code) => r(code)));
      s.npm.kill(signal);
      assert.equal(await exited, 0, s.lines.slice(-20).join("\n"));
      for (let i = 0; i < 100 && s.tree.some(pidAlive); i++) await sleep(100);
      assert.deepEqual(s.tree.filter(pidAlive), [], "processes left running");
      assert.ok(
        s.lines.some((l) => l.includes('"msg":"stopped"')),
        "the server logged stopped",
      );
    });
  }
});
