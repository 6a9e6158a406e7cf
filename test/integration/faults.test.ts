/**
 * The quick fault run (test/faults; the long one is `node dist/test/faults/run.js --long`).
 * Two replicas, their own Postgres, a Redis cache and three Redlock masters,
 * every store link through toxiproxy; concurrent KV, lock and event clients for
 * about a minute while faults are injected (kill -9 and restart of a replica,
 * Redis restart/kill/FLUSHALL, Postgres restart and crash, Redlock masters
 * killed, latency/reset/black-hole/refused links to Postgres and Redis, a
 * paused replica). Then:
 *  - the KV history (Get/CompareAndSet/Delete) is linearizable, by Porcupine;
 *  - no fenced write with a stale token landed (from kv_history and tokens);
 *  - every acknowledged event is stored once, and every subscriber saw every
 *    event of its target once, in order, without gaps, across reconnections.
 * Needs Go (the checker is built from test/faults/checker; toxiproxy-server is
 * used from the PATH or installed, pinned, into ~/.cache/agentstate-faults).
 * AGENTSTATE_FAULTS_SEED=N repeats a run's choices.
 */
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { checkLinearizable } from "../faults/checkLinearizable";
import { runFaults } from "../faults/FaultRun";
import { buildChecker, CHECKER_SRC, findToxiproxy } from "../faults/goTools";
import { KNOWN_CRASHES, KNOWN_INTERNAL_ERRORS } from "../faults/knownBugs";
import { PRESETS, REQUIRED_FAULTS, defaultOutDir } from "../faults/presets";

const VERBOSE = process.env.AGENTSTATE_TEST_VERBOSE === "1";

describe("faults: histories checked under injected faults (quick run)", function () {
  this.timeout(600_000);
  let checkerBin = "";
  let toxiproxyBin = "";

  before(async function () {
    this.timeout(600_000); // a fresh machine downloads Porcupine and builds toxiproxy
    [checkerBin, toxiproxyBin] = await Promise.all([buildChecker(), findToxiproxy()]);
  });

  it("the checker's register model passes its Go tests", async () => {
    await new Promise<void>((resolve, reject) =>
      execFile(
        process.env.GO ?? "go",
        ["test", "-mod=readonly", "./..."],
        { cwd: CHECKER_SRC },
        (err, stdout, stderr) => (err ? reject(new Error(`go test failed:\n${stdout}\n${stderr}`)) : resolve()),
      ),
    );
  });

  it("the checker reads a history file: a stale read is not linearizable, an indeterminate write may have happened", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-checker-"));
    try {
      const base = { client: 0, key: "k", replica: 0 };
      const write = (value: string, call: number, ret: number, version: number) => ({
        ...base,
        kind: "cas",
        expect: "any",
        value,
        call,
        return: ret,
        outcome: "ok",
        applied: true,
        found: true,
        version,
        outValue: value,
      });
      const read = (client: number, call: number, ret: number, version: number, value: string) => ({
        ...base,
        client,
        kind: "get",
        call,
        return: ret,
        outcome: "ok",
        found: true,
        version,
        outValue: value,
      });
      const stale = path.join(dir, "stale.json");
      fs.writeFileSync(
        stale,
        JSON.stringify({ ops: [write("a", 0, 10, 1), write("b", 20, 30, 2), read(1, 40, 50, 1, "a")] }),
      );
      const bad = await checkLinearizable(checkerBin, stale, {
        timeoutMs: 10_000,
        visPath: path.join(dir, "vis.html"),
      });
      assert.equal(bad.result, "Illegal");
      assert.ok(fs.existsSync(path.join(dir, "vis.html")), "a visualization is written for a failed check");

      const maybe = path.join(dir, "maybe.json");
      const lost = {
        ...base,
        client: 2,
        kind: "cas",
        expect: "version",
        expectVersion: 1,
        value: "c",
        call: 15,
        return: 16,
        outcome: "indeterminate",
        error: "UNAVAILABLE",
      };
      fs.writeFileSync(maybe, JSON.stringify({ ops: [write("a", 0, 10, 1), lost, read(1, 40, 50, 2, "c")] }));
      const ok = await checkLinearizable(checkerBin, maybe, { timeoutMs: 10_000 });
      assert.equal(ok.result, "Ok");
      assert.equal(ok.indeterminate, 1);

      // A write settled as committed afterwards: known outcome, no return time.
      const settled = (version: number) => ({
        ...lost,
        outcome: "committed",
        applied: true,
        found: true,
        version,
        outValue: "c",
      });
      const late = path.join(dir, "late.json");
      fs.writeFileSync(late, JSON.stringify({ ops: [write("a", 0, 10, 1), settled(2), read(1, 40, 50, 2, "c")] }));
      assert.equal((await checkLinearizable(checkerBin, late, { timeoutMs: 10_000 })).result, "Ok");
      const wrong = path.join(dir, "wrong.json");
      fs.writeFileSync(wrong, JSON.stringify({ ops: [write("a", 0, 10, 1), settled(3), read(1, 40, 50, 3, "c")] }));
      assert.equal((await checkLinearizable(checkerBin, wrong, { timeoutMs: 10_000 })).result, "Illegal");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("under kill -9, restarts, FLUSHALL and network faults: KV linearizable, no stale fenced write lands, every subscriber sees every event once in order", async function () {
    const seed = Number(process.env.AGENTSTATE_FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const outDir = defaultOutDir("mocha");
    const lines: string[] = [];
    let report;
    try {
      report = await runFaults({
        ...PRESETS.quick,
        seed,
        checkerBin,
        toxiproxyBin,
        outDir,
        knownCrashes: KNOWN_CRASHES,
        knownInternalErrors: KNOWN_INTERNAL_ERRORS,
        log: (l) => {
          lines.push(l);
          if (VERBOSE) console.log(`      ${l}`);
        },
      });
    } catch (e) {
      throw new Error(
        `fault run (seed ${seed}) failed to complete; artifacts in ${outDir}\n${lines.join("\n")}\n${String(e)}`,
      );
    }
    const where = `seed ${seed}; artifacts in ${outDir}`;
    assert.deepEqual(report.failures, [], where);
    assert.equal(report.kv.porcupine?.result, "Ok", where);
    assert.deepEqual(report.locks?.violations, [], where);
    assert.deepEqual(report.events?.violations, [], where);
    assert.deepEqual(report.faults.errors, [], `faults could not be injected (${where})`);
    for (const kind of REQUIRED_FAULTS) {
      assert.ok((report.faults.byKind[kind] ?? 0) >= 1, `fault ${kind} was injected (${where})`);
    }
    // The run did real work (loose floors: the machine may be slow, never a timing assertion).
    assert.ok(report.kv.recorded >= 300, `KV operations recorded: ${report.kv.recorded}`);
    assert.ok((report.kv.porcupine?.appliedWrites ?? 0) >= 50, "applied KV writes");
    assert.ok((report.locks?.acquisitions ?? 0) >= 5, "lock acquisitions");
    assert.ok((report.events?.acknowledgedEvents ?? 0) >= 50, "acknowledged events");
    // Cached reads, from Redis and from the replicas' near caches, were part of the checked history.
    assert.ok((report.kv.cacheStats["hit"] ?? 0) >= 1, `cache hits: ${JSON.stringify(report.kv.cacheStats)}`);
    assert.ok((report.kv.cacheStats["near_hits"] ?? 0) >= 1, `near hits: ${JSON.stringify(report.kv.cacheStats)}`);
    const known = [...Object.entries(report.knownCrashes), ...Object.entries(report.knownInternal)];
    if (known.length > 0 || VERBOSE) {
      console.log(
        `      (seed ${seed}: ${report.kv.recorded} KV ops, ${report.faults.total} faults; replica crashes and INTERNAL replies of known bugs: ${
          known.map(([bug, n]) => `${n} x ${bug}`).join("; ") || "none"
        })`,
      );
    }
    fs.rmSync(outDir, { recursive: true, force: true });
  });
});
