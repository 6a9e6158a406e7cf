import * as assert from "node:assert/strict";
import type { BinaryWriter } from "@bufbuild/protobuf/wire";
import {
  CheckpointServiceService,
  PutCheckpointRequest,
  PutWritesRequest,
} from "../../clients/typescript/src/gen/agentstate/v1/checkpoint";
import { reusingSerializer } from "../../clients/typescript/src/serialize";

const put = (size: number, fill: number) =>
  PutCheckpointRequest.fromPartial({
    namespace: "ns",
    threadId: "t",
    checkpointId: `c${size}`,
    parentCheckpointId: "p",
    document: { type: "json", data: Buffer.alloc(300, 100) },
    metadataJson: Buffer.from('{"step":1}'),
    channelVersions: { messages: "00000000000000000000000000000002.5" },
    values: [
      {
        channel: "messages",
        version: "00000000000000000000000000000002.5",
        value: { type: "json", data: Buffer.alloc(size, fill) },
      },
    ],
    requireParentIsHead: true,
  });

describe("client: reusingSerializer (PutCheckpoint and PutWrites requests)", () => {
  it("gives the generated serializer's bytes, for requests that grow, shrink and grow again", () => {
    const reused = reusingSerializer(PutCheckpointRequest);
    const generated = CheckpointServiceService.putCheckpoint.requestSerialize;
    for (const [size, fill] of [
      [10, 1],
      [40_000, 2],
      [5, 3],
      [200, 4],
      [100_000, 5],
      [0, 6],
    ] as const) {
      const r = put(size, fill);
      assert.deepEqual(reused(r), generated(r));
    }
  });

  it("an earlier result is not changed by later calls (each is its own copy)", () => {
    const reused = reusingSerializer(PutCheckpointRequest);
    const first = reused(put(30_000, 7));
    const copy = Buffer.from(first);
    for (let i = 0; i < 5; i++) reused(put(30_000 + i, 8 + i));
    assert.deepEqual(first, copy);
    assert.deepEqual(PutCheckpointRequest.decode(first).values[0]!.value!.data, Buffer.alloc(30_000, 7));
  });

  it("a writer whose finish() hands out a view of its buffer is not reused (that view is the request)", () => {
    // As a BinaryWriter that returned views instead of copies would.
    const viewing = {
      encode(message: PutWritesRequest, writer?: BinaryWriter) {
        const w = PutWritesRequest.encode(message, writer);
        return {
          finish() {
            const n = w.finish().byteLength;
            return (w as unknown as { buffer: Uint8Array }).buffer.subarray(0, n);
          },
        } as unknown as BinaryWriter;
      },
    };
    const reused = reusingSerializer(viewing);
    const req = (fill: number) =>
      PutWritesRequest.fromPartial({
        namespace: "ns",
        writes: [{ index: 0, channel: "c", value: { type: "json", data: Buffer.alloc(100, fill) } }],
      });
    const first = reused(req(1));
    reused(req(2));
    assert.deepEqual(PutWritesRequest.decode(first).writes[0]!.value!.data, Buffer.alloc(100, 1));
  });

  it("an encode that throws leaves nothing behind: the next request is encoded whole", () => {
    const reused = reusingSerializer(PutWritesRequest);
    const bad = PutWritesRequest.fromPartial({ namespace: "ns", writes: [{ index: 1.5, channel: "c" }] });
    assert.throws(() => reused(bad));
    const good = PutWritesRequest.fromPartial({
      namespace: "ns",
      threadId: "t",
      writes: [{ index: 1, channel: "c", value: { type: "json", data: Buffer.from("[1]") } }],
    });
    assert.deepEqual(reused(good), CheckpointServiceService.putWrites.requestSerialize(good));
  });
});
