/**
 * A put and a read touch the rows of their own keys, not the thread's nor the
 * namespace's, against real Postgres behind a real server: threads of 120
 * checkpoints (the messages channel stored as deltas by the server), then
 *  - agentstate_checkpoint_put with a delta on the thread's last value reads
 *    at most a few rows of checkpoint_blobs (release 7's base check was planned
 *    as a scan of the thread's values: a put cost grew with the thread);
 *  - GetCheckpoint's prepared statements (latest, by id) and a page of
 *    checkpoint_list.sql read about the rows they return (the lookups were
 *    planned as a hash of the namespace's values).
 * Rows read are Postgres' own counts for the transaction
 * (pg_stat_xact_user_tables: heap rows fetched through an index plus rows
 * read by sequential scans), counted inside a transaction that is rolled back.
 * No timing: the counts are exact whatever the machine's load. Also: the
 * pool's sessions run with JIT off (a read's estimates made Postgres compile it).
 */
import * as assert from "node:assert/strict";
import { Client } from "pg";
import { createPool } from "../../src/store/postgres/createPool";
import { sql } from "../../src/store/postgres/sql";
import { CheckpointClient } from "../support/checkpointClient";
import { startCluster, type Cluster } from "../support/startCluster";

const STEPS = 120;
const THREADS = 3;
const ns = "rows-read";
const version = (i: number) => `${String(i).padStart(32, "0")}.0.5`;
const id = (i: number) => `ck-${String(i).padStart(4, "0")}`;
/** Step i's messages: one more 100-byte message than step i - 1 (a growing channel, stored as deltas). */
const messages = (thread: string, i: number) =>
  Buffer.from(JSON.stringify(Array.from({ length: i + 4 }, (_, k) => `${thread} message ${k} `.padEnd(100, "m"))));

interface Counts {
  fetched: number;
  scanned: number;
}

describe("Checkpoints: a put and a read touch their own keys' rows (real Postgres)", function () {
  this.timeout(180_000);
  let cluster: Cluster;
  let cp: CheckpointClient;
  let pg: Client;

  before(async () => {
    cluster = await startCluster({ name: "checkpoints_rows_read" });
    cp = new CheckpointClient(cluster.servers[0]!.address);
    await Promise.all(
      Array.from({ length: THREADS }, async (_, t) => {
        const thread = `t${t}`;
        for (let i = 1; i <= STEPS; i++) {
          await cp.put({
            namespace: ns,
            threadId: thread,
            checkpointNs: "",
            checkpointId: id(i),
            parentCheckpointId: i === 1 ? "" : id(i - 1),
            document: { type: "json", data: Buffer.from(JSON.stringify({ id: id(i) })) },
            metadataJson: Buffer.from(JSON.stringify({ step: i })),
            channelVersions: { messages: version(i), step: version(i) },
            values: [
              { channel: "messages", version: version(i), value: { type: "json", data: messages(thread, i) } },
              { channel: "step", version: version(i), value: { type: "json", data: Buffer.from(String(i)) } },
            ],
            requireParentIsHead: true,
          });
          await cp.putWrites({
            namespace: ns,
            threadId: thread,
            checkpointNs: "",
            checkpointId: id(i),
            taskId: `task-${i}`,
            writes: [{ channel: "step", index: 0, value: { type: "json", data: Buffer.from(String(i + 1)) } }],
          });
        }
      }),
    );
    pg = new Client({ connectionString: cluster.databaseUrl, options: "-c jit=off" });
    pg.on("error", () => undefined);
    await pg.connect();
  });
  after(async () => {
    await pg?.end();
    cp?.close();
    await cluster?.stop();
  });

  /** Runs `body` in a transaction that is rolled back; checkpoint_blobs' rows read by it. */
  async function rowsRead<T>(body: () => Promise<T>): Promise<{ result: T; blobs: Counts }> {
    const counts = async (): Promise<Counts> => {
      const r = await pg.query<{ fetched: string; scanned: string }>(
        `SELECT coalesce(idx_tup_fetch, 0) AS fetched, coalesce(seq_tup_read, 0) AS scanned
         FROM pg_stat_xact_user_tables WHERE relname = 'checkpoint_blobs'`,
      );
      return { fetched: Number(r.rows[0]?.fetched ?? 0), scanned: Number(r.rows[0]?.scanned ?? 0) };
    };
    await pg.query("BEGIN");
    try {
      const before = await counts();
      const result = await body();
      const after = await counts();
      return { result, blobs: { fetched: after.fetched - before.fetched, scanned: after.scanned - before.scanned } };
    } finally {
      await pg.query("ROLLBACK");
    }
  }

  it("the server's pool sessions run without JIT, unless the connection string sets options itself", async () => {
    const jitOf = async (connectionString: string) => {
      const pool = createPool({ connectionString, max: 1, statementTimeoutMs: 5000 });
      try {
        return (await pool.query<{ jit: string }>("SHOW jit")).rows[0]!.jit;
      } finally {
        await pool.end();
      }
    };
    assert.equal(await jitOf(cluster.databaseUrl), "off");
    const sep = cluster.databaseUrl.includes("?") ? "&" : "?";
    assert.equal(await jitOf(`${cluster.databaseUrl}${sep}options=${encodeURIComponent("-c jit=on")}`), "on");
  });

  it("the threads are what the test needs: the messages channel stored as deltas, the thread's values many", async () => {
    const r = await pg.query<{ values: string; deltas: string }>(
      `SELECT count(*) AS values, count(base) AS deltas FROM checkpoint_blobs
       WHERE namespace = $1 AND thread_id = 't0' AND chunk = 0`,
      [ns],
    );
    assert.equal(Number(r.rows[0]!.values), 2 * STEPS);
    assert.ok(Number(r.rows[0]!.deltas) > STEPS / 2, `deltas stored: ${r.rows[0]!.deltas}`);
  });

  it("a put with a delta on the thread's last value reads a few of its value rows, not the thread's", async () => {
    const last = await pg.query<{ version: string; crc: number; depth: number | null }>(
      `SELECT version, crc, depth FROM checkpoint_blobs
       WHERE namespace = $1 AND thread_id = 't1' AND checkpoint_ns = '' AND channel = 'messages' AND chunk = 0
       ORDER BY version DESC LIMIT 1`,
      [ns],
    );
    const base = last.rows[0]!;
    assert.equal(base.version, version(STEPS));
    const next = STEPS + 1;
    const { result, blobs } = await rowsRead(() =>
      pg.query<{ status: number; created: boolean }>(
        `SELECT * FROM agentstate_checkpoint_put(p_namespace => $1, p_thread_id => 't1', p_checkpoint_ns => '',
           p_checkpoint_id => $2, p_parent_id => $3, p_strict => true, p_document_type => 'json',
           p_document => '\\x7b7d'::bytea, p_metadata => '{}'::jsonb, p_channel_versions => $4::jsonb,
           p_blob_channel => ARRAY['messages'], p_blob_version => ARRAY[$5], p_blob_chunk => ARRAY[0],
           p_blob_type => ARRAY[''], p_blob_size => ARRAY[3], p_blob_data => '\\x000102'::bytea,
           p_blob_base => ARRAY[$6], p_blob_base_crc => ARRAY[$7::int], p_blob_depth => ARRAY[$8::int],
           p_blob_crc => ARRAY[1], p_blob_bytes => ARRAY[10])`,
        [
          ns,
          id(next),
          id(STEPS),
          JSON.stringify({ messages: version(next) }),
          version(next),
          base.version,
          base.crc,
          (base.depth ?? 0) + 1,
        ],
      ),
    );
    assert.equal(result.rows[0]!.status, 1, "stored");
    assert.equal(blobs.scanned, 0, "no sequential scan of checkpoint_blobs");
    assert.ok(
      blobs.fetched <= 3,
      `checkpoint_blobs rows fetched by the put: ${blobs.fetched} (the thread has ${2 * STEPS})`,
    );
  });

  /**
   * A read of thread t2 as the store runs it: the prepared GetCheckpoint
   * statements run 8 times first (Postgres plans a prepared statement for its
   * values 5 times, then keeps a generic plan: the one counted), the list
   * unnamed (planned per call).
   */
  async function read(
    statement: "checkpoint_get_latest" | "checkpoint_get_by_id" | "checkpoint_list",
    params: unknown[],
  ) {
    const st = sql(statement);
    const prepared = statement !== "checkpoint_list";
    if (prepared) for (let i = 0; i < 8; i++) await pg.query(st, params);
    return rowsRead(async () => (await pg.query<{ kind: string }>(prepared ? st : { text: st.text }, params)).rows);
  }

  for (const [what, statement, params, checkpoints] of [
    ["the latest checkpoint (GetCheckpoint)", "checkpoint_get_latest", [ns, "t2", ""], 1],
    ["a checkpoint by id (GetCheckpoint)", "checkpoint_get_by_id", [ns, "t2", "", id(STEPS - 40)], 1],
    ["a page of 10 (ListCheckpoints)", "checkpoint_list", [ns, "t2", "", "", "", null, null, null, null, 10], 10],
  ] as const) {
    it(`reading ${what} reads about the value rows it returns`, async () => {
      const { result, blobs } = await read(statement, [...params]);
      const values = result.filter((r) => r.kind === "b").length;
      assert.equal(result.filter((r) => r.kind === "c").length, checkpoints);
      assert.ok(values >= 2, `value rows returned: ${values}`);
      assert.equal(blobs.scanned, 0, "no sequential scan of checkpoint_blobs");
      // Each value row once, each delta's base probed once more on the way down its chain.
      assert.ok(
        blobs.fetched <= 2 * values,
        `rows fetched ${blobs.fetched} for ${values} returned (namespace: ${2 * STEPS * THREADS})`,
      );
    });
  }
});
