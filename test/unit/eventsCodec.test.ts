import * as assert from "node:assert/strict";
import { loadConfig } from "../../src/config/config";
import { decodeAppend, decodeExpectedStream, decodeReadStream, decodeSubscribe } from "../../src/grpc/events/codec";
import { AppendEventRequest, Direction, ReadStreamRequest, SubscribeRequest } from "../../src/gen/agentstate/v1/event";
import { expectInvalidArgument as rejects } from "../support/expectInvalidArgument";

const limits = loadConfig({}).limits;

describe("grpc/events/codec", () => {
  it("decodeExpectedStream: exactly one condition, a version >= 1, flags true", () => {
    assert.deepEqual(decodeExpectedStream("expected", { noStream: true }), { kind: "no_stream" });
    assert.deepEqual(decodeExpectedStream("expected", { version: 3 }), { kind: "version", version: 3 });
    rejects(() => decodeExpectedStream("expected", undefined), "expected", /one of any, no_stream, exists, version/);
    rejects(() => decodeExpectedStream("expected", { any: true, exists: true }), "expected", /exactly one/);
    rejects(() => decodeExpectedStream("expected", { version: 0 }), "expected.version", /must be >= 1/);
    rejects(() => decodeExpectedStream("expected", { exists: false }), "expected.exists", /must be true when set/);
  });

  it("decodeAppend: ids lower-cased or generated, each bad field named", () => {
    const append = (events: Parameters<typeof AppendEventRequest.fromPartial>[0]["events"]) =>
      decodeAppend(
        AppendEventRequest.fromPartial({ namespace: "ns", stream: "s", expected: { any: true }, events }),
        limits,
      );
    const id = "0F8FAD5B-D9CB-469F-A165-70867728950E";
    const cmd = append([{ id, type: "t" }, { type: "t" }]);
    assert.equal(cmd.events[0]!.id, id.toLowerCase());
    assert.match(cmd.events[1]!.id, /^[0-9a-f-]{36}$/);
    rejects(() => append([]), "events", /at least one/);
    rejects(() => append([{ id: "x", type: "t" }]), "events[0].id", /must be a UUID/);
    rejects(
      () =>
        append([
          { id, type: "t" },
          { id, type: "t" },
        ]),
      "events[1].id",
      /appears twice/,
    );
    rejects(() => append([{ type: "" }]), "events[0].type", /is required/);
  });

  it("decodeAppend: metadata entries per event counted before any entry is checked", () => {
    const entries = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
    const append = (events: Parameters<typeof AppendEventRequest.fromPartial>[0]["events"]) =>
      decodeAppend(
        AppendEventRequest.fromPartial({ namespace: "ns", stream: "s", expected: { any: true }, events }),
        limits,
      );
    assert.equal(limits.maxEventMetadataEntries, 64);
    assert.equal(Object.keys(append([{ type: "t", metadata: entries(64) }]).events[0]!.metadata).length, 64);
    rejects(
      () => append([{ type: "t" }, { type: "t", metadata: entries(65) }]),
      "events[1].metadata",
      /the limit is 64 \(AGENTSTATE_MAX_EVENT_METADATA_ENTRIES\)/,
    );
    // The count comes first: an oversized entry in a map over the count is not what is reported.
    const big = { ...entries(70), huge: "x".repeat(limits.maxEventBytes + 1) };
    rejects(() => append([{ type: "t", metadata: big }]), "events[0].metadata", /the limit is 64/);
  });

  it("decodeReadStream and decodeSubscribe: positions from 0, one target", () => {
    const read = decodeReadStream(
      ReadStreamRequest.fromPartial({ namespace: "ns", stream: "s", direction: Direction.DIRECTION_BACKWARDS }),
      limits,
    );
    assert.equal(read.direction, "backwards");
    rejects(
      () => decodeReadStream(ReadStreamRequest.fromPartial({ namespace: "ns", stream: "s", limit: -1 }), limits),
      "limit",
      /^limit: must be >= 0 \(0: no limit\)$/,
    );
    rejects(
      () =>
        decodeReadStream(
          ReadStreamRequest.fromPartial({ namespace: "ns", stream: "s", direction: 9 as Direction }),
          limits,
        ),
      "direction",
    );
    const sub = (r: Parameters<typeof SubscribeRequest.fromPartial>[0]) =>
      decodeSubscribe(SubscribeRequest.fromPartial(r), limits);
    assert.deepEqual(sub({ namespace: "ns", streamPrefix: "" }).target, { kind: "prefix", prefix: "" });
    rejects(() => sub({ namespace: "ns" }), "target", /is required/);
    rejects(() => sub({ namespace: "ns", stream: "s", streamPrefix: "p" }), "target", /not both/);
    rejects(
      () => sub({ namespace: "ns", stream: "s", afterPosition: -1 }),
      "after_position",
      /^after_position: must be >= 0$/,
    );
  });
});
