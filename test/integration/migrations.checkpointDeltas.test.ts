/**
 * Migration 0017 (channel values as deltas) on a store written by release 4,
 * and a replica of release 4 beside this one during the rolling upgrade
 * (its statements and functions as fixtures: test/fixtures/release4-*).
 * Real Postgres, a real server over gRPC.
 */
import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Pool } from "pg";
import { createPool } from "../../src/store/postgres/createPool";
import { migrate, readMigrations } from "../../src/store/postgres/migrate";
import { CheckpointClient } from "../support/checkpointClient";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";
import { getTestEnv } from "../support/TestEnv";

const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");
const FIXTURES = path.resolve(__dirname, "../../../test/fixtures");
const old = (name: string) => fs.readFileSync(path.join(FIXTURES, "release4-checkpoint-sql", `${name}.sql`), "utf8");

const ITEMS = Array.from({ length: 60 }, () => randomBytes(150).toString("hex"));
const list = (n: number) => Buffer.from(JSON.stringify(ITEMS.slice(0, n)));
const version = (n: number) => `${String(n).padStart(32, "0")}.0.5`;
const id = (n: number) => `ck-${String(n).padStart(4, "0")}`;
const NS = "mig17";
const THREAD = "t";

describe("migration 0017: a release-4 checkpoint store, and a release-4 replica beside this release", function () {
  this.timeout(180_000);
  const pools: Pool[] = [];
  let dir: string | undefined;
  let cluster: Cluster | undefined;
  let cp: CheckpointClient | undefined;
  let url: string;

  after(async () => {
    cp?.close();
    await cluster?.stop();
    await Promise.all(pools.map((p) => p.end()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A put as release 4 runs it (its statement, its function overload). */
  const putRelease4 = (n: number) =>
    pgQuery(url, old("checkpoint_put"), [
      NS,
      THREAD,
      "",
      id(n),
      n === 1 ? "" : id(n - 1),
      true,
      "json",
      Buffer.from(JSON.stringify({ n })),
      JSON.stringify({ step: n }),
      JSON.stringify({ messages: version(n), step: version(n) }),
      ["messages", "step"],
      [version(n), version(n)],
      [0, 0],
      ["json", "json"],
      [list(n).length, String(n).length],
      Buffer.concat([list(n), Buffer.from(String(n))]),
      null,
      null,
    ]);

  const readNow = async (n: number) => {
    const r = await cp!.get({ namespace: NS, threadId: THREAD, checkpointId: id(n) });
    return Object.fromEntries(
      (r.checkpoint?.values ?? []).map((v) => [v.channel, Buffer.from(v.value?.data ?? new Uint8Array())]),
    );
  };

  it("reads back every checkpoint release 4 wrote; goes on with deltas; release 4's puts and reads still work", async () => {
    url = await (await getTestEnv()).freshDatabase("mig17");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-release4-"));
    for (const m of readMigrations(MIGRATIONS_DIR).filter((m) => m.id < 17)) {
      fs.writeFileSync(path.join(dir, `${m.name}.sql`), m.sql);
    }
    const oldPool = createPool({ connectionString: url, max: 2, statementTimeoutMs: 10_000 });
    pools.push(oldPool);
    await migrate(oldPool, dir, { functionsDir: path.join(FIXTURES, "release4-functions"), release: 4 });
    for (let n = 1; n <= 40; n++) await putRelease4(n);

    // This release starts on it: migration 0017 and its functions.
    cluster = await startCluster({ name: "mig17", databaseUrl: url });
    cp = new CheckpointClient(cluster.servers[0]!.address);
    for (let n = 1; n <= 40; n++) {
      const v = await readNow(n);
      assert.ok(v.messages?.equals(list(n)), `messages at ${n}`);
      assert.equal(v.step?.toString(), String(n));
    }

    // It goes on with deltas (the first value whole: no last value known yet).
    for (let n = 41; n <= 50; n++) {
      await cp.put({
        namespace: NS,
        threadId: THREAD,
        checkpointNs: "",
        checkpointId: id(n),
        parentCheckpointId: id(n - 1),
        requireParentIsHead: true,
        document: { type: "json", data: Buffer.from(JSON.stringify({ n })) },
        metadataJson: Buffer.from(JSON.stringify({ step: n })),
        channelVersions: { messages: version(n), step: version(n) },
        values: [
          { channel: "messages", version: version(n), value: { type: "json", data: list(n) } },
          { channel: "step", version: version(n), value: { type: "json", data: Buffer.from(String(n)) } },
        ],
      });
    }
    const kinds = await pgQuery<{ version: string; base: string | null; type: string }>(
      url,
      "SELECT version, base, type FROM checkpoint_blobs WHERE namespace = $1 AND channel = 'messages' ORDER BY version",
      [NS],
    );
    assert.deepEqual(
      kinds.slice(39).map((k) => [k.base === null, k.type]),
      [[true, "json"], [true, "json"], ...Array.from({ length: 9 }, () => [false, ""])],
    );

    // A replica of release 4: its put (its overload is still there) stores whole values ...
    await putRelease4(51);
    assert.ok((await readNow(51)).messages?.equals(list(51)));
    // ... and its read of a delta gets the type '' no serializer takes, never the delta as the value.
    const read = await pgQuery<{ kind: string; s1: string; type: string }>(url, old("checkpoint_list"), [
      NS,
      THREAD,
      "",
      id(45),
      "",
      null,
      null,
      null,
      null,
      1,
    ]);
    assert.deepEqual(
      read
        .filter((r) => r.kind === "b")
        .map((r) => [r.s1, r.type])
        .sort(),
      [
        ["messages", ""],
        ["step", "json"],
      ],
    );
    // This release reads everything, then prunes to the latest (which release 4 wrote whole).
    for (const n of [1, 40, 45, 50, 51]) assert.ok((await readNow(n)).messages?.equals(list(n)), `at ${n}`);
    await cp.prune({ namespace: NS, threadIds: [THREAD], keepLatest: 1 });
    const [left] = await pgQuery<{ n: string }>(
      url,
      "SELECT count(*) AS n FROM checkpoint_blobs WHERE namespace = $1",
      [NS],
    );
    assert.equal(Number(left!.n), 2);
    assert.ok((await readNow(51)).messages?.equals(list(51)));
  });
});
