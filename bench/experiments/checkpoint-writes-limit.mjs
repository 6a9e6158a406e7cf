// Experiment (issue 18): what the checkpoint size check costs a PutWrites.
// agentstate_checkpoint_writes_put sums, before it writes, the checkpoint's
// document, metadata, referenced channel values and pending writes (so an
// accepted write can be read back in one reply). This calls the function
// directly, one autocommit statement per call as the server does, shaped
// like LangGraph steps: each step puts a checkpoint (12 channels of 200 bytes,
// one new version per step; not timed), then 8 tasks each put 2 writes of 100
// bytes on it (timed). Rounds of `--steps` steps alternate three shapes: the
// function with the check off (p_max_bytes 0) and on (4 MiB), and release 3's
// plain statement (test/fixtures/release3-checkpoint-sql; the same statement
// as checkpoint_writes_put_small.sql, which small calls now take). It reports
// the Postgres backend's CPU per PutWrites (/proc/<pid>/stat: the measure
// least disturbed by a shared machine), the wall time per PutWrites and the
// CPU of a whole step (the put and its 8 PutWrites), medians of the rounds.
//   npm run build && node bench/experiments/checkpoint-writes-limit.mjs [--steps 200] [--rounds 5]
import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import console from "node:console";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(import.meta.url);
const { Client } = require("pg");
const { PostgresProcess } = require(path.join(root, "dist/test/support/PostgresProcess.js"));
const { ServerProcess } = require(path.join(root, "dist/test/support/ServerProcess.js"));
const { cpuSeconds } = require(path.join(root, "dist/test/support/procfs.js"));

const { values } = parseArgs({
  options: { steps: { type: "string", default: "200" }, rounds: { type: "string", default: "5" } },
});
const steps = Number(values.steps);
const rounds = Number(values.rounds);
const median = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];

const pg = await PostgresProcess.start();
try {
  await pg.createDatabase("ckw");
  // A server applies the migrations and functions, then goes.
  const server = await ServerProcess.start({
    DATABASE_URL: pg.url("ckw"),
    REDIS_URL: "",
    AGENTSTATE_METRICS_PORT: "-1",
  });
  await server.stop();

  const c = new Client({ connectionString: pg.url("ckw") });
  await c.connect();
  const backend = (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
  const versions = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`ch${i}`, "0"]));
  const chans = Object.keys(versions);
  // Version 0 of every channel, referenced by every checkpoint until replaced.
  await c.query(
    `INSERT INTO checkpoint_blobs (namespace, thread_id, checkpoint_ns, channel, version, chunk, type, data)
     SELECT 'b', 't', '', ch, '0', 0, 'json', $2 FROM unnest($1::text[]) AS ch`,
    [chans, Buffer.alloc(200, 7)],
  );
  const put = {
    name: "put",
    text: `SELECT * FROM agentstate_checkpoint_put(p_namespace => 'b', p_thread_id => 't', p_checkpoint_ns => '',
       p_checkpoint_id => $1, p_parent_id => '', p_strict => false, p_document_type => 'json', p_document => $2,
       p_metadata => $3, p_channel_versions => $4, p_blob_channel => $5, p_blob_version => $6, p_blob_chunk => $7,
       p_blob_type => $8, p_blob_size => $9, p_blob_data => $10)`,
  };
  const writes = {
    name: "writes",
    text: `SELECT * FROM agentstate_checkpoint_writes_put(p_namespace => 'b', p_thread_id => 't',
      p_checkpoint_ns => '', p_checkpoint_id => $1, p_task_id => $2, p_task_path => '', p_idx => '{0,1}',
      p_channel => '{a,b}', p_type => '{json,json}', p_size => '{100,100}', p_data => $3, p_chunk_bytes => 1048576,
      p_max_bytes => $4)`,
  };
  // Release 3's statement (no chunks, no check), for reference.
  const release3 = {
    name: "release3",
    text: fs.readFileSync(path.join(root, "test/fixtures/release3-checkpoint-sql/checkpoint_writes_put.sql"), "utf8"),
  };
  const data = Buffer.alloc(200, 3);
  let step = 0;
  const run = async (maxBytes) => {
    let cpu = 0;
    let putCpu = 0;
    let wall = 0n;
    for (let s = 0; s < steps; s++) {
      step++;
      const id = `c${String(step).padStart(8, "0")}`;
      const changed = chans[step % chans.length];
      versions[changed] = String(step);
      const putCpu0 = cpuSeconds(backend);
      await c.query({
        ...put,
        values: [
          id,
          Buffer.alloc(300, 1),
          JSON.stringify({ source: "loop", step }),
          JSON.stringify(versions),
          [changed],
          [String(step)],
          [0],
          ["json"],
          [200],
          Buffer.alloc(200, 7),
        ],
      });
      putCpu += cpuSeconds(backend) - putCpu0;
      const cpu0 = cpuSeconds(backend);
      const t0 = process.hrtime.bigint();
      for (let t = 0; t < 8; t++) {
        await c.query(
          maxBytes < 0
            ? {
                ...release3,
                values: ["b", "t", "", id, `task${t}`, "", [0, 1], ["a", "b"], ["json", "json"], [100, 100], data],
              }
            : { ...writes, values: [id, `task${t}`, data, maxBytes] },
        );
      }
      wall += process.hrtime.bigint() - t0;
      cpu += cpuSeconds(backend) - cpu0;
    }
    return {
      cpuUs: (cpu * 1e6) / (steps * 8),
      wallMs: Number(wall) / 1e6 / (steps * 8),
      stepCpuUs: ((cpu + putCpu) * 1e6) / steps,
    };
  };
  await run(0); // warm up (and the 16 writes exist from here on)
  const res = { release3: [], off: [], on: [] };
  for (let r = 0; r < rounds; r++) {
    res.release3.push(await run(-1));
    res.off.push(await run(0));
    res.on.push(await run(4 * 1024 * 1024));
  }
  await c.end();
  const row = (k) => {
    const cpu = median(res[k].map((x) => x.cpuUs));
    const wall = median(res[k].map((x) => x.wallMs));
    const step = median(res[k].map((x) => x.stepCpuUs));
    return { cpu, wall, step };
  };
  const r3 = row("release3");
  const off = row("off");
  const on = row("on");
  console.log(`${steps} steps of 8 PutWrites per round, ${rounds} rounds (medians)`);
  console.log(`release 3:  backend CPU ${r3.cpu.toFixed(0)} us/call, wall ${r3.wall.toFixed(3)} ms/call`);
  console.log(`check off: backend CPU ${off.cpu.toFixed(0)} us/call, wall ${off.wall.toFixed(3)} ms/call`);
  console.log(`check on:  backend CPU ${on.cpu.toFixed(0)} us/call, wall ${on.wall.toFixed(3)} ms/call`);
  console.log(`on/off: CPU ${(on.cpu / off.cpu).toFixed(2)}x, wall ${(on.wall / off.wall).toFixed(2)}x`);
  console.log(`on/release 3: CPU ${(on.cpu / r3.cpu).toFixed(2)}x, wall ${(on.wall / r3.wall).toFixed(2)}x`);
  console.log(
    `a step (1 put + 8 PutWrites), backend CPU: release 3 ${r3.step.toFixed(0)} us, off ${off.step.toFixed(0)} us, on ${on.step.toFixed(0)} us (${(on.step / off.step).toFixed(2)}x)`,
  );
} finally {
  await pg.destroy();
}
