// Experiment: CPU of writing the per-RPC "rpc" log line, one Logger build
// against another (e.g. main's hand-written logger vs the pino one). Each run
// is a child process whose stdout is a pipe this script drains, as a server's
// is; it writes LINES lines, PER_TURN per event-loop turn (as a busy server
// finishing calls), waits for the writes to finish, and reports its own CPU
// (user + system, every thread: the thread pool's writes count).
//   node bench/experiments/logger-lines.mjs --a /tmp/main/dist/src/log/Logger.js \
//     --b dist/src/log/Logger.js [--lines 200000] [--per-turn 1,16,256] [--runs 5] [--scenario rpc|child|unused]
// scenario rpc: env.log.info("rpc", {request_id, rpc, code, ms}) on a logger with {service, pid}.
// scenario child: a per-call child logger (request_id, rpc) and one line through it.
// scenario unused: a per-call child logger nothing is written through, and the rpc line.
import { spawn } from "node:child_process";
import process from "node:process";
import { setImmediate, setTimeout } from "node:timers";
import { resolve } from "node:path";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

if (process.env.LOGGER_LINES_CHILD) {
  const { Logger } = createRequire(import.meta.url)(process.env.LOGGER_LINES_CHILD);
  const lines = Number(process.env.LINES);
  const perTurn = Number(process.env.PER_TURN);
  const log = new Logger("info", { service: "agentstate", pid: process.pid });
  const rpcLine = (i) =>
    log.info("rpc", { request_id: `0123456789ab-${i.toString(36)}`, rpc: "Get", code: "OK", ms: 0.12 });
  const line = {
    rpc: rpcLine,
    child: (i) =>
      log.child({ request_id: `0123456789ab-${i.toString(36)}`, rpc: "Get" }).info("rpc", { code: "OK", ms: 0.12 }),
    // A call that fails with an expected error: its child logger is made, nothing is logged through it.
    unused: (i) => log.child({ request_id: `0123456789ab-${i.toString(36)}`, rpc: "Get" }) && rpcLine(i),
  }[process.env.SCENARIO];
  const start = process.cpuUsage();
  let i = 0;
  const turn = () => {
    for (let k = 0; k < perTurn && i < lines; k++, i++) line(i);
    if (i < lines) setImmediate(turn);
    else setTimeout(done, 300); // idle: let the last writes finish (costs no CPU)
  };
  const done = () => {
    const u = process.cpuUsage(start);
    process.stderr.write(JSON.stringify({ cpuUs: u.user + u.system }) + "\n");
  };
  turn();
} else {
  const { values } = parseArgs({
    options: {
      a: { type: "string" },
      b: { type: "string" },
      lines: { type: "string", default: "200000" },
      "per-turn": { type: "string", default: "1,16,256" },
      runs: { type: "string", default: "5" },
      scenario: { type: "string", default: "rpc" },
    },
  });
  if (!values.a || !values.b) throw new Error("--a and --b: the two Logger.js builds to compare");
  const lines = Number(values.lines);
  const run = (path, perTurn) =>
    new Promise((resolvePromise, reject) => {
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
        env: {
          ...process.env,
          LOGGER_LINES_CHILD: resolve(path),
          LINES: String(lines),
          PER_TURN: String(perTurn),
          SCENARIO: values.scenario,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let bytes = 0;
      let err = "";
      child.stdout.on("data", (d) => (bytes += d.length));
      child.stderr.on("data", (d) => (err += d));
      child.on("exit", (code) => {
        if (code !== 0) return reject(new Error(`child exited ${code}: ${err}`));
        const { cpuUs } = JSON.parse(err.trim().split("\n").pop());
        resolvePromise({ cpuUs, bytes });
      });
    });
  const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  for (const perTurn of values["per-turn"].split(",").map(Number)) {
    const cpu = { a: [], b: [] };
    const bytes = {};
    for (let r = 0; r < Number(values.runs); r++) {
      for (const k of ["a", "b"]) {
        const res = await run(values[k], perTurn);
        cpu[k].push(res.cpuUs);
        bytes[k] = res.bytes;
      }
    }
    const a = median(cpu.a) / lines;
    const b = median(cpu.b) / lines;
    process.stdout.write(
      `${values.scenario} lines=${lines} per-turn=${perTurn}: a ${a.toFixed(3)} us/line, b ${b.toFixed(3)} us/line ` +
        `(b/a ${(b / a).toFixed(2)}); bytes a ${bytes.a} b ${bytes.b}; runs a [${cpu.a.join(" ")}] b [${cpu.b.join(" ")}] us\n`,
    );
  }
}
