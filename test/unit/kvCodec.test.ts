import * as assert from "node:assert/strict";
import { loadConfig } from "../../src/config/config";
import {
  decodeCompareAndSet,
  decodeDelete,
  decodeExpected,
  decodeGet,
  decodeList,
  encodePageToken,
  itemToPb,
} from "../../src/grpc/kv/codec";
import {
  CompareAndSetRequest,
  Consistency,
  DeleteRequest,
  GetRequest,
  ListRequest,
} from "../../src/gen/agentstate/v1/kv";
import { expectInvalidArgument as rejects } from "../support/expectInvalidArgument";

const limits = loadConfig({}).limits;

describe("grpc/kv/codec", () => {
  describe("decodeExpected", () => {
    it("decodes each condition", () => {
      assert.deepEqual(decodeExpected("expected", { version: 5 }), { kind: "version", version: 5 });
      assert.deepEqual(decodeExpected("expected", { absent: true }), { kind: "absent" });
      assert.deepEqual(decodeExpected("expected", { any: true }), { kind: "any" });
    });
    it("requires exactly one condition", () => {
      rejects(() => decodeExpected("expected", undefined), "expected");
      rejects(() => decodeExpected("expected", {}), "expected");
      rejects(() => decodeExpected("expected", { version: 1, any: true }), "expected");
      rejects(() => decodeExpected("expected", { absent: true, any: true }), "expected");
    });
    it("refuses version < 1 and false flags, naming the sub-field", () => {
      rejects(() => decodeExpected("expected", { version: 0 }), "expected.version");
      rejects(() => decodeExpected("expected", { version: -1 }), "expected.version");
      rejects(() => decodeExpected("expected", { version: 1.5 }), "expected.version");
      rejects(() => decodeExpected("expected", { absent: false }), "expected.absent");
      rejects(() => decodeExpected("expected", { any: false }), "expected.any");
    });
  });

  describe("decodeGet", () => {
    it("maps consistency, LINEARIZABLE by default", () => {
      const base = { namespace: "ns", key: "k" };
      assert.equal(decodeGet(GetRequest.fromPartial(base), limits).consistency, "linearizable");
      assert.equal(
        decodeGet(GetRequest.fromPartial({ ...base, consistency: Consistency.CONSISTENCY_LINEARIZABLE }), limits)
          .consistency,
        "linearizable",
      );
      assert.equal(
        decodeGet(GetRequest.fromPartial({ ...base, consistency: Consistency.CONSISTENCY_DATABASE }), limits)
          .consistency,
        "database",
      );
    });
    it("refuses a bad namespace, key or consistency", () => {
      rejects(() => decodeGet(GetRequest.fromPartial({ namespace: "NS", key: "k" }), limits), "namespace");
      rejects(() => decodeGet(GetRequest.fromPartial({ namespace: "ns", key: "" }), limits), "key");
      rejects(
        () => decodeGet(GetRequest.fromPartial({ namespace: "ns", key: "k", consistency: 7 as Consistency }), limits),
        "consistency",
      );
    });
  });

  describe("decodeCompareAndSet", () => {
    const base = { namespace: "ns", key: "k", expected: { any: true }, value: Buffer.from("v") };
    it("decodes a full request", () => {
      const cmd = decodeCompareAndSet(
        CompareAndSetRequest.fromPartial({
          ...base,
          contentType: "text/plain",
          ttl: { seconds: 2, nanos: 5_000_000 },
          idempotencyKey: "i",
          fence: { lockName: "l", token: 9 },
        }),
        limits,
      );
      assert.deepEqual(cmd, {
        op: "put",
        namespace: "ns",
        key: "k",
        expected: { kind: "any" },
        value: Buffer.from("v"),
        contentType: "text/plain",
        ttlMs: 2005,
        idempotencyKey: "i",
        fence: { lockName: "l", token: 9 },
      });
    });
    it("leaves optional fields undefined when unset (an empty idempotency key is none)", () => {
      const cmd = decodeCompareAndSet(CompareAndSetRequest.fromPartial(base), limits);
      assert.equal(cmd.op === "put" && cmd.ttlMs, undefined);
      assert.equal(cmd.idempotencyKey, undefined);
      assert.equal(cmd.fence, undefined);
    });
    it("names each bad field", () => {
      const bad: [string, Parameters<typeof CompareAndSetRequest.fromPartial>[0]][] = [
        ["namespace", { ...base, namespace: "" }],
        ["key", { ...base, key: "x".repeat(1025) }],
        ["expected", { ...base, expected: undefined }],
        ["value", { ...base, value: Buffer.alloc(limits.maxValueBytes + 1) }],
        ["content_type", { ...base, contentType: "c".repeat(256) }],
        ["ttl", { ...base, ttl: { seconds: -1 } }],
        ["idempotency_key", { ...base, idempotencyKey: "i".repeat(256) }],
        ["fence.token", { ...base, fence: { lockName: "l", token: -1 } }],
      ];
      for (const [field, req] of bad)
        rejects(() => decodeCompareAndSet(CompareAndSetRequest.fromPartial(req), limits), field);
    });
  });

  describe("decodeDelete", () => {
    it("decodes a delete", () => {
      assert.deepEqual(
        decodeDelete(DeleteRequest.fromPartial({ namespace: "ns", key: "k", expected: { version: 2 } }), limits),
        {
          op: "delete",
          namespace: "ns",
          key: "k",
          expected: { kind: "version", version: 2 },
          idempotencyKey: undefined,
          fence: undefined,
        },
      );
    });
    it("names each bad field", () => {
      rejects(() => decodeDelete(DeleteRequest.fromPartial({ namespace: "ns", key: "k" }), limits), "expected");
      rejects(
        () => decodeDelete(DeleteRequest.fromPartial({ namespace: "ns", key: "", expected: { any: true } }), limits),
        "key",
      );
      rejects(
        () => decodeDelete(DeleteRequest.fromPartial({ namespace: "", key: "k", expected: { any: true } }), limits),
        "namespace",
      );
    });
  });

  describe("decodeList and page tokens", () => {
    const list = (r: Parameters<typeof ListRequest.fromPartial>[0]) => decodeList(ListRequest.fromPartial(r), limits);

    it("defaults: no lower bound, the default page size", () => {
      assert.deepEqual(list({ namespace: "ns" }), {
        namespace: "ns",
        prefix: "",
        after: undefined,
        limit: 100,
        includeValues: false,
      });
      assert.equal(list({ namespace: "ns", limit: 1000 }).limit, 1000);
    });

    it("a page token round-trips to the last key of the previous page", () => {
      for (const last of ["p/a", "p/日本", "p/\u{10FFFF}", 'p/"quoted"\\', "p/"]) {
        const pageToken = encodePageToken("ns", "p/", last);
        assert.match(pageToken, /^[A-Za-z0-9_-]+$/, "URL-safe");
        assert.equal(list({ namespace: "ns", prefix: "p/", pageToken }).after, last);
      }
    });

    it("refuses a token from another namespace or prefix", () => {
      const pageToken = encodePageToken("ns", "p/", "p/a");
      rejects(() => list({ namespace: "ns2", prefix: "p/", pageToken }), "page_token");
      rejects(() => list({ namespace: "ns", prefix: "q/", pageToken }), "page_token");
      rejects(() => list({ namespace: "ns", prefix: "", pageToken }), "page_token");
    });

    it("refuses tokens List never returned", () => {
      const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64url");
      for (const pageToken of [
        "garbage!",
        b64("{"),
        b64("1"),
        b64('"k"'),
        b64("[]"),
        b64('{"n":"ns","p":""}'),
        b64('{"n":"ns","p":"","k":7}'),
      ]) {
        rejects(() => list({ namespace: "ns", pageToken }), "page_token");
      }
    });

    // A token of JSON `null` ("bnVsbA") once threw a TypeError (answered INTERNAL).
    it("refuses a token that decodes to JSON null", () => {
      rejects(() => list({ namespace: "ns", pageToken: Buffer.from("null").toString("base64url") }), "page_token");
    });

    it("names a bad limit or prefix", () => {
      rejects(() => list({ namespace: "ns", limit: limits.listMaxLimit + 1 }), "limit");
      rejects(() => list({ namespace: "ns", limit: -1 }), "limit");
      rejects(() => list({ namespace: "ns", prefix: "x".repeat(1025) }), "prefix");
      rejects(() => list({ namespace: "ns", prefix: "a\u0000" }), "prefix");
      rejects(() => list({ namespace: "" }), "namespace");
    });
  });

  describe("itemToPb", () => {
    it("copies every field; no expiry stays unset", () => {
      const t = new Date("2030-01-01T00:00:00Z");
      const item = {
        key: "k",
        value: Buffer.from("v"),
        contentType: "c",
        version: 2,
        createRevision: 5,
        modRevision: 9,
        createTime: t,
        updateTime: t,
        expireTime: undefined,
      };
      // Field for field the same, an unset expiry included (deepEqual is strict about own keys).
      assert.deepEqual(itemToPb(item), item);
    });
  });
});
