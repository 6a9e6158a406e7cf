import * as assert from "node:assert/strict";
import { StreamSlots } from "../../src/domain/streamSlots";
import { LimitExceededError } from "../../src/errors/errors";

describe("domain/streamSlots", () => {
  it("caps per namespace and per server, naming the setting; a release frees exactly one slot", () => {
    const s = new StreamSlots({
      what: "Subscribe streams",
      perServer: 3,
      perServerSetting: "AGENTSTATE_MAX_SUBSCRIBERS",
      perNamespace: 2,
      perNamespaceSetting: "AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE",
    });
    const a1 = s.acquire("a");
    s.acquire("a");
    assert.throws(
      () => s.acquire("a"),
      (e: unknown) =>
        e instanceof LimitExceededError &&
        e.limit === "AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE" &&
        /namespace a: the limit is 2/.test(e.message),
    );
    s.acquire("b");
    assert.throws(
      () => s.acquire("c"),
      (e: unknown) =>
        e instanceof LimitExceededError && e.limit === "AGENTSTATE_MAX_SUBSCRIBERS" && /limit is 3/.test(e.message),
    );
    a1();
    a1(); // idempotent
    assert.equal(s.open, 2);
    assert.equal(s.openIn("a"), 1);
    s.acquire("c");
    assert.equal(s.open, 3);
  });
});
