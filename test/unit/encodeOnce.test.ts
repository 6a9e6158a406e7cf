import * as assert from "node:assert/strict";
import type { ServiceDefinition } from "@grpc/grpc-js";
import { encodeOnce } from "../../src/grpc/codec/encodeOnce";

describe("grpc/codec encodeOnce", () => {
  it("encodes one response object once however many times it is written; other objects and methods as before", () => {
    let calls = 0;
    const method = {
      path: "/s/M",
      requestStream: false,
      responseStream: true,
      requestSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
      requestDeserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
      responseSerialize: (v: unknown) => {
        calls++;
        return Buffer.from(JSON.stringify(v));
      },
      responseDeserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
    };
    const other = { ...method, path: "/s/N" };
    const def = encodeOnce({ m: method, n: other } as unknown as ServiceDefinition, "m");
    const shared = { event: 1 };
    for (let i = 0; i < 1000; i++) assert.equal(def["m"]!.responseSerialize(shared).toString(), '{"event":1}');
    assert.equal(calls, 1);
    assert.equal(def["m"]!.responseSerialize({ event: 1 }).toString(), '{"event":1}');
    assert.equal(calls, 2, "an equal but distinct object is encoded anew");
    assert.equal(def["n"], other);
    assert.throws(() => encodeOnce(def, "missing"), /no method missing/);
  });
});
