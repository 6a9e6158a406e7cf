import * as assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { DependencyHealth } from "../../src/compose/DependencyHealth";
import { Logger } from "../../src/log/Logger";

describe("DependencyHealth: down past the threshold, up on the next good check, each transition once", () => {
  it("marks the dependency's services down, then up, logging each change once", async () => {
    const lines: string[] = [];
    const log = new Logger("info", {}, (l) => lines.push(l));
    let ok = true;
    const downs: string[][] = [];
    const gauge: [string, boolean][] = [];
    const health = new DependencyHealth(
      [
        {
          name: "postgres",
          services: ["", "svc"],
          check: async () => (ok ? undefined : Promise.reject(new Error("refused"))),
        },
      ],
      {
        probeMs: 20,
        unhealthyAfterMs: 100,
        onChange: (down) => downs.push([...down].sort()),
        onDependency: (name, up) => gauge.push([name, up]),
      },
      log,
    );
    health.start();
    try {
      await sleep(150);
      assert.deepEqual(downs, [], "healthy: no change");
      ok = false;
      await sleep(400);
      assert.deepEqual(downs, [["", "svc"]], "down once, not once per failed check");
      ok = true;
      await sleep(150);
      assert.deepEqual(downs, [["", "svc"], []]);
      assert.deepEqual(gauge, [
        ["postgres", true],
        ["postgres", false],
        ["postgres", true],
      ]);
      const msgs = lines.map((l) => (JSON.parse(l) as { msg: string; level: string | number }).msg);
      assert.deepEqual(
        msgs.filter((m) => m.startsWith("dependency")),
        ["dependency down: not serving", "dependency back: serving"],
      );
    } finally {
      health.stop();
    }
  });

  it("a check that never answers (a frozen database) counts as failing", async () => {
    const downs: string[][] = [];
    const health = new DependencyHealth(
      [{ name: "postgres", services: [""], check: () => new Promise<void>(() => undefined) }],
      { probeMs: 20, unhealthyAfterMs: 100, onChange: (down) => downs.push([...down]) },
      new Logger("error", {}, () => undefined),
    );
    health.start();
    await sleep(250);
    health.stop();
    assert.deepEqual(downs, [[""]]);
  });
});
