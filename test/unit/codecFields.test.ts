import * as assert from "node:assert/strict";
import { loadConfig } from "../../src/config/config";
import { decodeAddress, decodeFence, requireNonNegative, requirePositive } from "../../src/grpc/codec/fields";
import { expectInvalidArgument as rejects } from "../support/expectInvalidArgument";

const limits = loadConfig({}).limits;

describe("grpc/codec/fields", () => {
  describe("decodeFence", () => {
    it("is undefined when unset", () => assert.equal(decodeFence("fence", undefined, limits), undefined));
    it("decodes a fence", () =>
      assert.deepEqual(decodeFence("fence", { lockName: "l", token: 3 }, limits), { lockName: "l", token: 3 }));
    it("refuses a bad lock name or a token < 1", () => {
      rejects(() => decodeFence("fence", { lockName: "", token: 1 }, limits), "fence.lock_name");
      rejects(() => decodeFence("fence", { lockName: "a\u0000", token: 1 }, limits), "fence.lock_name");
      rejects(() => decodeFence("fence", { lockName: "l", token: 0 }, limits), "fence.token");
    });
  });

  describe("decodeAddress", () => {
    it("checks the namespace, then the name under its own field", () => {
      decodeAddress("ns", "stream", "s", limits);
      rejects(() => decodeAddress("", "stream", "", limits), "namespace", /is required/);
      rejects(() => decodeAddress("ns", "stream", "", limits), "stream", /must not be empty/);
      rejects(() => decodeAddress("ns", "name", "a\u0000", limits), "name", /NUL/);
    });
  });

  describe("requirePositive and requireNonNegative", () => {
    it("accept safe integers from 1 (or 0) and name the field otherwise", () => {
      assert.equal(requirePositive("v", 1), 1);
      assert.equal(requireNonNegative("v", 0), 0);
      for (const v of [0, -1, 1.5, 2 ** 53]) rejects(() => requirePositive("v", v), "v", /^v: must be >= 1$/);
      for (const v of [-1, 0.5]) rejects(() => requireNonNegative("v", v), "v", /^v: must be >= 0$/);
      rejects(() => requireNonNegative("limit", -1, "0: no limit"), "limit", /^limit: must be >= 0 \(0: no limit\)$/);
    });
  });
});
