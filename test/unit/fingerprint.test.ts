import * as assert from "node:assert/strict";
import { requestFingerprint } from "../../src/domain/fingerprint";
import type { DeleteCommand, PutCommand, WriteCommand } from "../../src/domain/types";

const put: PutCommand = {
  op: "put",
  namespace: "ns",
  key: "k",
  expected: { kind: "version", version: 3 },
  value: Buffer.from("value"),
  contentType: "text/plain",
  ttlMs: 1000,
  idempotencyKey: "idem",
  fence: { lockName: "lock", token: 7 },
};
const del: DeleteCommand = {
  op: "delete",
  namespace: "ns",
  key: "k",
  expected: { kind: "version", version: 3 },
  idempotencyKey: "idem",
  fence: { lockName: "lock", token: 7 },
};

const hex = (c: WriteCommand) => requestFingerprint(c).toString("hex");

describe("domain/fingerprint: requestFingerprint", () => {
  it("is a 32-byte SHA-256", () => assert.equal(requestFingerprint(put).length, 32));

  it("is the same for the same request (a fresh but equal object)", () => {
    assert.equal(hex(put), hex({ ...put, value: Buffer.from("value"), expected: { kind: "version", version: 3 } }));
    assert.equal(hex(del), hex({ ...del }));
  });

  it("does not depend on the idempotency key itself", () =>
    assert.equal(hex(put), hex({ ...put, idempotencyKey: "other" })));

  const putVariants: [string, PutCommand][] = [
    ["namespace", { ...put, namespace: "ns2" }],
    ["key", { ...put, key: "k2" }],
    ["expected (any)", { ...put, expected: { kind: "any" } }],
    ["expected (absent)", { ...put, expected: { kind: "absent" } }],
    ["expected version", { ...put, expected: { kind: "version", version: 4 } }],
    ["value", { ...put, value: Buffer.from("valuf") }],
    ["value (empty)", { ...put, value: Buffer.alloc(0) }],
    ["content type", { ...put, contentType: "application/json" }],
    ["content type (none)", { ...put, contentType: "" }],
    ["ttl", { ...put, ttlMs: 1001 }],
    ["ttl (none)", { ...put, ttlMs: undefined }],
    ["fence lock name", { ...put, fence: { lockName: "lock2", token: 7 } }],
    ["fence token", { ...put, fence: { lockName: "lock", token: 8 } }],
    ["fence (none)", { ...put, fence: undefined }],
    // Field boundaries are length-prefixed: moving bytes between fields is a change.
    ["split of bytes between namespace and key", { ...put, namespace: "nsk", key: "" }],
    [
      "split of bytes between content type and value",
      { ...put, contentType: "text/plai", value: Buffer.from("nvalue") },
    ],
  ];
  for (const [what, variant] of putVariants) {
    it(`differs for a put with another ${what}`, () => assert.notEqual(hex(variant), hex(put)));
  }

  it("all put variants are distinct from each other", () => {
    const all = putVariants.map(([, v]) => hex(v));
    assert.equal(new Set(all).size, all.length);
  });

  it("distinguishes a delete from a put of the same key and condition", () => {
    assert.notEqual(hex(del), hex(put));
    assert.notEqual(hex({ ...del, expected: { kind: "any" } }), hex({ ...put, expected: { kind: "any" } }));
  });

  const delVariants: [string, DeleteCommand][] = [
    ["namespace", { ...del, namespace: "ns2" }],
    ["key", { ...del, key: "k2" }],
    ["expected", { ...del, expected: { kind: "any" } }],
    ["fence (none)", { ...del, fence: undefined }],
  ];
  for (const [what, variant] of delVariants) {
    it(`differs for a delete with another ${what}`, () => assert.notEqual(hex(variant), hex(del)));
  }
});
