import * as assert from "node:assert/strict";
import { AppendEventRequest } from "../../src/gen/agentstate/v1/event";
import { appendOverLimits } from "../../src/grpc/codec/wireCount";

const entries = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
const bytes = (events: Parameters<typeof AppendEventRequest.fromPartial>[0]["events"]) =>
  AppendEventRequest.encode(
    AppendEventRequest.fromPartial({
      namespace: "ns",
      stream: "s",
      expected: { any: true },
      events,
      fence: { lockName: "l", token: 3 },
    }),
  ).finish();

describe("grpc/codec/wireCount", () => {
  it("counts events and metadata entries on the wire, naming the first over its limit", () => {
    assert.equal(
      appendOverLimits(bytes([{ type: "t", data: Buffer.alloc(300), metadata: entries(4) }]), 2, 4),
      undefined,
    );
    assert.deepEqual(appendOverLimits(bytes([{ type: "t" }, { type: "t", metadata: entries(5) }]), 2, 4), {
      path: "events[1].metadata",
      count: 5,
      limit: 4,
    });
    assert.deepEqual(appendOverLimits(bytes([{ type: "t" }, { type: "t" }, { type: "t" }]), 2, 4), {
      path: "events",
      count: 3,
      limit: 2,
    });
  });

  it("stops counting past the limit, and leaves bytes that do not parse to the decoder", () => {
    const big = bytes([{ type: "t", metadata: entries(100_000) }]);
    const t0 = performance.now();
    assert.equal(appendOverLimits(big, 1000, 64)?.count, 65);
    assert.ok(performance.now() - t0 < 50);
    assert.equal(appendOverLimits(big.subarray(0, big.length - 3), 1000, 1_000_000), undefined);
    assert.equal(appendOverLimits(Uint8Array.from([0xff, 0xff, 0xff]), 1, 1), undefined);
  });
});
