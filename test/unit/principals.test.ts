import * as assert from "node:assert/strict";
import { allows, mayGrant, parseGrants, type Principal } from "../../src/domain/principals";
import { InvalidArgumentError } from "../../src/errors/errors";

function principal(grants: unknown): Principal {
  return { name: "p", grants: parseGrants(grants, "grants"), via: "token" };
}

describe("principals: grants by namespace pattern, key prefix and role", () => {
  const p = principal([
    { namespace: "demo", prefix: "agents/", roles: ["read", "write"] },
    { namespace: "team-*", roles: ["lock"] },
    { namespace: "ops", roles: ["admin"] },
  ]);

  it("a key is covered by a grant whose prefix it starts with, in the grant's namespace only", () => {
    assert.ok(allows(p, "read", [{ namespace: "demo", key: "agents/a" }]));
    assert.ok(!allows(p, "read", [{ namespace: "demo", key: "secrets/a" }]));
    assert.ok(!allows(p, "read", [{ namespace: "demo2", key: "agents/a" }]));
    assert.ok(!allows(p, "lock", [{ namespace: "demo", key: "agents/a" }]));
  });

  it("a prefix (List, Subscribe) is covered only by a grant whose prefix is a prefix of it", () => {
    assert.ok(allows(p, "read", [{ namespace: "demo", prefix: "agents/x" }]));
    assert.ok(!allows(p, "read", [{ namespace: "demo", prefix: "agent" }]));
    assert.ok(!allows(p, "read", [{ namespace: "demo", prefix: "" }]));
  });

  it("a pattern ending in * covers the namespaces it starts; admin holds every role", () => {
    assert.ok(allows(p, "lock", [{ namespace: "team-a", key: "l" }]));
    assert.ok(!allows(p, "lock", [{ namespace: "team", key: "l" }]));
    assert.ok(allows(p, "write", [{ namespace: "ops", prefix: "" }]));
    assert.ok(!allows(p, "admin", [{ namespace: "demo", key: "agents/a" }]));
  });

  it("an admin may grant only within its own admin scope", () => {
    const ops = principal([{ namespace: "ops-*", roles: ["admin"] }]);
    assert.ok(mayGrant(ops, { namespace: "ops-a", prefix: "", roles: ["read"] }));
    assert.ok(mayGrant(ops, { namespace: "ops-a*", prefix: "x/", roles: ["admin"] }));
    assert.ok(!mayGrant(ops, { namespace: "*", prefix: "", roles: ["read"] }));
    assert.ok(!mayGrant(ops, { namespace: "op*", prefix: "", roles: ["read"] }));
  });

  it("malformed grants are refused, naming the field", () => {
    for (const [bad, field] of [
      [{}, "grants"],
      [[{ namespace: "Demo", roles: ["read"] }], "grants[0].namespace"],
      [[{ namespace: "a*b", roles: ["read"] }], "grants[0].namespace"],
      [[{ namespace: "demo", roles: [] }], "grants[0].roles"],
      [[{ namespace: "demo", roles: ["root"] }], "grants[0].roles"],
      [[{ namespace: "demo", prefix: 7, roles: ["read"] }], "grants[0].prefix"],
      [Array(65).fill({ namespace: "demo", roles: ["read"] }), "grants"],
    ] as const) {
      assert.throws(
        () => parseGrants(bad, "grants"),
        (e: unknown) => e instanceof InvalidArgumentError && e.field === field,
      );
    }
  });
});
