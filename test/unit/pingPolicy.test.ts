import * as assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { constants } from "node:http2";
import { enforcePingPolicy, TOO_MANY_PINGS, type PingedSession } from "../../src/grpc/pingPolicy";

class FakeSession extends EventEmitter implements PingedSession {
  closed = false;
  destroyed = false;
  goaways: { code: number | undefined; data: string }[] = [];
  goaway(code?: number, _last?: number, data?: NodeJS.ArrayBufferView): void {
    this.goaways.push({ code, data: Buffer.from(data as Uint8Array).toString() });
  }
  close(): void {
    this.closed = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

describe("pingPolicy: the minimum interval between client pings", () => {
  let t = 0;
  const now = () => t;
  const setup = (minIntervalMs: number, maxStrikes: number) => {
    const s = new FakeSession();
    let violations = 0;
    enforcePingPolicy(s, { minIntervalMs, maxStrikes }, () => violations++, 10, now);
    return { s, violations: () => violations };
  };
  const ping = (s: FakeSession, at: number) => {
    t = at;
    s.emit("ping", Buffer.alloc(8));
  };

  it("pings that keep the interval are fine, however many", () => {
    const { s, violations } = setup(1000, 2);
    for (let i = 0; i < 100; i++) ping(s, i * 1000);
    assert.equal(violations(), 0);
    assert.equal(s.closed, false);
  });

  it("past maxStrikes early pings in a row: GOAWAY ENHANCE_YOUR_CALM too_many_pings, closed, once", () => {
    const { s, violations } = setup(1000, 2);
    ping(s, 0);
    ping(s, 10); // strike 1
    ping(s, 20); // strike 2
    assert.equal(violations(), 0);
    ping(s, 30); // strike 3 > 2
    assert.equal(violations(), 1);
    assert.deepEqual(s.goaways, [{ code: constants.NGHTTP2_ENHANCE_YOUR_CALM, data: TOO_MANY_PINGS }]);
    assert.equal(s.closed, true);
    ping(s, 40);
    assert.equal(violations(), 1);
    assert.equal(s.goaways.length, 1);
  });

  it("a ping that keeps the interval, or a new call, clears the strikes", () => {
    const { s, violations } = setup(1000, 1);
    ping(s, 0);
    ping(s, 10); // strike 1
    ping(s, 2000); // cleared
    ping(s, 2010); // strike 1
    s.emit("stream");
    ping(s, 2020); // strike 1 again, not 2
    assert.equal(violations(), 0);
    ping(s, 2030); // strike 2 > 1
    assert.equal(violations(), 1);
  });

  it("a message the server writes clears the strikes (a grpc-go client pings once per DATA it reads, for BDP)", () => {
    const { s, violations } = setup(1000, 1);
    const written: string[] = [];
    const stream = {
      write(chunk: string) {
        written.push(chunk);
        return true;
      },
    };
    s.emit("stream", stream);
    for (let i = 0; i < 100; i++) {
      assert.equal(stream.write(`m${i}`), true);
      ping(s, 10 * i); // one ping per message, 10 ms apart
    }
    assert.equal(violations(), 0, "pings between messages are not strikes");
    assert.equal(written.length, 100, "the writes went through");
    ping(s, 1001);
    ping(s, 1002); // strike 2 > 1: no message since the last ping
    assert.equal(violations(), 1);
  });

  it("minIntervalMs 0 turns it off", () => {
    const { s, violations } = setup(0, 0);
    for (let i = 0; i < 100; i++) ping(s, 0);
    assert.equal(violations(), 0);
  });

  it("maxStrikes 0: the first early ping closes the connection", () => {
    const { s, violations } = setup(1000, 0);
    ping(s, 0);
    ping(s, 1);
    assert.equal(violations(), 1);
  });
});
