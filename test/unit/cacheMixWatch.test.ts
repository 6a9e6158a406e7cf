import * as assert from "node:assert/strict";
import { CacheMixWatch, describeCache } from "../../src/compose/CacheMixWatch";
import type { CacheLeaseState } from "../../src/domain/ports";
import { Logger } from "../../src/log/Logger";

const lease = (others: string[]): CacheLeaseState => ({
  epoch: 1,
  ageMs: 0,
  owner: null,
  quietMs: 0,
  others,
  moves: [],
  movesMore: false,
});

describe("compose/CacheMixWatch: a mixed cache configuration is logged once, by configuration", () => {
  it("warns once with both sides, again only when what differs changes, and says when the mix is over", () => {
    const lines: Record<string, unknown>[] = [];
    const watch = new CacheMixWatch(
      "redis h:6379/0 prefix p",
      new Logger("info", {}, (l) => lines.push(JSON.parse(l))),
    );
    watch.observe(lease([]), "id1");
    assert.deepEqual(watch.state(), { mixed: false, self: "id1 redis h:6379/0 prefix p", others: [] });
    watch.observe(lease(["none no cache"]), "id1");
    watch.observe(lease(["none no cache"]), "id1");
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!["level"], "warn");
    assert.deepEqual(lines[0]!["others"], ["no cache"]);
    assert.equal(lines[0]!["this"], "id1 redis h:6379/0 prefix p");
    // Another identity with a configuration already seen (a flushed Redis) is no new mix.
    watch.observe(lease(["none no cache", "id9 redis h:6380/0 prefix p", "id8 redis h:6380/0 prefix p"]), "id1");
    watch.observe(lease(["none no cache", "id7 redis h:6380/0 prefix p"]), "id1");
    assert.equal(lines.length, 2);
    assert.deepEqual(watch.state().others, ["no cache", "redis h:6380/0 prefix p"]);
    watch.observe(lease([]), "id1");
    assert.equal(lines.length, 3);
    assert.equal(lines[2]!["level"], "info");
    assert.equal(watch.state().mixed, false);
  });

  it("describes a cache by where it is, never by who logs in", () => {
    assert.equal(
      describeCache("redis://user:s3cret@cache.internal:6380/2", "app"),
      "redis cache.internal:6380/2 prefix app",
    );
    assert.equal(describeCache("rediss://:s3cret@c", "p"), "redis (tls) c:6379/0 prefix p");
    const seeds = {
      nodes: [
        { host: "a", port: 7000 },
        { host: "b", port: 7001 },
      ],
      username: "u",
      password: "s3cret",
      tls: true,
    };
    assert.equal(
      describeCache("rediss+cluster://u:s3cret@a:7000,b:7001", "p", seeds),
      "redis cluster (tls) a:7000,b:7001 prefix p",
    );
  });
});
