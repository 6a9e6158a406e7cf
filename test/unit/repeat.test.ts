import * as assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Repeat } from "../../src/domain/repeat";

describe("Repeat", () => {
  it("runs the first pass in the same turn, then again after each pass settles, never two at once", async () => {
    let running = 0;
    let most = 0;
    let passes = 0;
    const r = new Repeat(async () => {
      running++;
      most = Math.max(most, running);
      passes++;
      await sleep(15); // longer than the interval: a timer-driven repeat would overlap
      running--;
    }, 1);
    r.start();
    assert.equal(passes, 1, "the first pass started synchronously");
    await sleep(120);
    await r.stop();
    assert.equal(most, 1);
    assert.ok(passes >= 3, `passes: ${passes}`);
  });

  it("stop() waits for the running pass, and no pass starts after it", async () => {
    let ended = false;
    let passes = 0;
    const r = new Repeat(async () => {
      passes++;
      await sleep(30);
      ended = true;
    }, 1);
    r.start();
    await r.stop();
    assert.equal(ended, true, "stop resolved before the running pass ended");
    const after = passes;
    await sleep(40);
    assert.equal(passes, after);
  });

  it("with a first delay, nothing runs before it; stopped before it, nothing runs at all", async () => {
    let passes = 0;
    const r = new Repeat(async () => {
      passes++;
    }, 1);
    r.start(30);
    assert.equal(passes, 0);
    await r.stop();
    await sleep(50);
    assert.equal(passes, 0);
  });
});
