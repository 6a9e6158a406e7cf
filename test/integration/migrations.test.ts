import * as assert from "node:assert/strict";
import * as path from "node:path";
import { readFunctions } from "../../src/store/postgres/functions";
import { readMigrations } from "../../src/store/postgres/migrate";
import { RELEASE } from "../../src/store/postgres/release";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

/** The migrations the servers load: the copy in the build (dist/migrations). */
const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");

describe("migrations: 3 servers starting at once on one empty database", function () {
  this.timeout(60_000);
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster({ replicas: 3, name: "migrations" });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("all three start, and the ledger has each migration exactly once", async () => {
    assert.equal(cluster.servers.length, 3);
    assert.ok(cluster.servers.every((s) => s.running));
    const expected = readMigrations(MIGRATIONS_DIR);
    assert.ok(expected.length > 0, `migrations found in ${MIGRATIONS_DIR}`);

    const rows = await pgQuery<{ id: number; name: string; n: number }>(
      cluster.databaseUrl,
      "SELECT id, name, count(*) OVER (PARTITION BY id)::int AS n FROM agentstate_migrations ORDER BY id",
    );
    assert.deepEqual(
      rows.map((r) => ({ id: r.id, name: r.name, n: r.n })),
      expected.map((m) => ({ id: m.id, name: m.name, n: 1 })),
    );
  });

  it("the functions exist once per file (a previous release's signature kept has its own) and the database records this code's release", async () => {
    const procs = await pgQuery<{ proname: string }>(
      cluster.databaseUrl,
      "SELECT proname FROM pg_proc WHERE proname LIKE 'agentstate\\_%' ORDER BY proname",
    );
    assert.deepEqual(
      procs.map((p) => p.proname),
      readFunctions()
        .map((f) => f.creates)
        .sort(),
    );
    const release = await pgQuery<{ release: number; migration: number }>(
      cluster.databaseUrl,
      "SELECT release, migration FROM agentstate_release",
    );
    assert.deepEqual(release, [{ release: RELEASE.number, migration: readMigrations(MIGRATIONS_DIR).at(-1)!.id }]);
  });

  it("each migration was applied by exactly one of the servers", () => {
    const applied = cluster.servers.flatMap((s) =>
      s
        .logs()
        .filter((l) => l.msg === "migrations applied")
        .flatMap((l) => l.applied as string[]),
    );
    assert.deepEqual(
      applied.sort(),
      readMigrations(MIGRATIONS_DIR)
        .map((m) => m.name)
        .sort(),
    );
  });

  it("all three serve, and see each other's writes", async () => {
    const [a, b, c] = cluster.clients;
    const writes = await Promise.all(
      cluster.clients.map((client, i) =>
        client.compareAndSet({
          namespace: "mig",
          key: `from-${i}`,
          expected: { absent: true },
          value: Buffer.from(String(i)),
        }),
      ),
    );
    assert.ok(writes.every((w) => w.applied));
    for (const client of [a!, b!, c!]) {
      const list = await client.list({ namespace: "mig", includeValues: true });
      assert.deepEqual(
        list.items.map((i) => [i.key, Buffer.from(i.value).toString()]),
        [
          ["from-0", "0"],
          ["from-1", "1"],
          ["from-2", "2"],
        ],
      );
    }
  });

  it("a server started later on the migrated database applies nothing and serves", async () => {
    const { server, client } = await cluster.addReplica();
    assert.deepEqual(
      server.logs().filter((l) => l.msg === "migrations applied"),
      [],
    );
    assert.equal((await client.get({ namespace: "mig", key: "from-0" })).found, true);
    const rows = await pgQuery<{ n: number }>(
      cluster.databaseUrl,
      "SELECT count(*)::int AS n FROM agentstate_migrations",
    );
    assert.equal(rows[0]!.n, readMigrations(MIGRATIONS_DIR).length);
  });
});
