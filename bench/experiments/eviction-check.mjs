// EXPERIMENT: what the cache scripts' eviction check costs Redis per call
// (src/store/redis/lua/lib/evictedSinceArm.lua; ARCHITECTURE.md, "the arm").
//
//   npm run build && node bench/experiments/eviction-check.mjs [--calls 20000] [--rounds 3]
//
// Starts a Redis of its own and runs, round after round, three scripts that
// each do an HMGET of an arm and one SET: without the check, with the check as
// it is (INFO stats only, while evicted_keys has not moved), and with the
// check's first form (INFO stats and INFO commandstats on every call, as
// branch mixmerge had it). Prints the Redis CPU per call of each (used_cpu_user
// + used_cpu_sys of INFO cpu, before and after): the part of a write's cost
// the check adds in a single configuration, without the noise of a full A/B.
//
// Then the end-write as the server sends it (src/store/redis/lua/cacheEndWrite-n.lua,
// one call per group-commit batch: src/store/redis/EndWrites.ts), with batches
// of 1, 4, 16 and 64 writes, with its check and with the check stubbed out:
// Redis CPU per write, i.e. what the check and the script's fixed cost come to
// once shared by the writes of a batch (a batch of 1 is one call per write, as
// before EndWrites).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import console from "node:console";
import process from "node:process";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { startRedis } from "../lib/procs.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const LIB = path.resolve(HERE, "../../src/store/redis/lua/lib/evictedSinceArm.lua");
const END_WRITE = path.resolve(HERE, "../../src/store/redis/lua/cacheEndWrite-n.lua");
const { values: o } = parseArgs({
  options: { calls: { type: "string", default: "20000" }, rounds: { type: "string", default: "3" } },
});
const CALLS = Number(o.calls);
const ROUNDS = Number(o.rounds);

// The first form, for comparison: both INFO sections on every call.
const FIRST_FORM = `local function evictedSinceArm(armedKey)
  local a = redis.call('HMGET', armedKey, 'e', 's', 'r', 't')
  if not (a[1] and a[2] and a[3] and a[4]) then return true end
  local info = redis.call('INFO', 'stats') .. redis.call('INFO', 'commandstats')
  local e = tonumber(string.match(info, 'evicted_keys:(%d+)') or '-1')
  local t = tonumber(string.match(info, 'total_commands_processed:(%d+)') or '-1')
  local s = tonumber(string.match(info, 'cmdstat_config|set:calls=(%d+)')
    or string.match(info, 'cmdstat_config:calls=(%d+)') or '0')
  local r = tonumber(string.match(info, 'cmdstat_config|resetstat:calls=(%d+)') or '0')
  local ae, as, ar, at = tonumber(a[1]), tonumber(a[2]), tonumber(a[3]), tonumber(a[4])
  if e < ae or s < as or r ~= ar or t < at then return true end
  return e ~= ae and s ~= as
end
`;
const BODY = "if evictedSinceArm(KEYS[1]) then return 0 end redis.call('SET', KEYS[2], ARGV[1]) return 1";
const SCRIPTS = {
  "no check": "redis.call('HMGET', KEYS[1], 'e', 's', 'r', 't') redis.call('SET', KEYS[2], ARGV[1]) return 1",
  "INFO stats (now)": `${fs.readFileSync(LIB, "utf8")}\n${BODY}`,
  "stats + commandstats (first form)": `${FIRST_FORM}${BODY}`,
};

const cpuSeconds = (info) =>
  Number(/used_cpu_user:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)[1]);

const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-eviction-check-"));
const redisProc = await startRedis(runDir, "redis");
const redis = new Redis({ port: redisProc.port, lazyConnect: false });
try {
  // A server that has run a cache has a few dozen commands in commandstats.
  for (const c of ["get", "set", "del", "hset", "hget", "zadd", "zcard", "pexpire", "exists", "ping", "time"])
    await redis.call("COMMAND", "INFO", c);
  const stats = await redis.info("stats");
  const e = /evicted_keys:(\d+)/.exec(stats)[1];
  await redis.hset("arm", "e", e, "s", "0", "r", "0", "t", "1");
  const results = Object.fromEntries(Object.keys(SCRIPTS).map((k) => [k, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      const sha = await redis.script("LOAD", lua);
      const before = cpuSeconds(await redis.info("cpu"));
      let inFlight = [];
      for (let i = 0; i < CALLS; i++) {
        inFlight.push(redis.evalsha(sha, 2, "arm", `k${i % 100}`, "v"));
        if (inFlight.length >= 200) {
          const replies = await Promise.all(inFlight);
          if (replies.some((r) => r !== 1)) throw new Error(`${name}: the check refused`);
          inFlight = [];
        }
      }
      await Promise.all(inFlight);
      const usPerCall = ((cpuSeconds(await redis.info("cpu")) - before) * 1e6) / CALLS;
      results[name].push(usPerCall);
    }
  }
  const print = (title, rows) => {
    console.log(title);
    for (const [name, v] of Object.entries(rows)) {
      const sorted = [...v].sort((a, b) => a - b);
      console.log(
        `  ${name.padEnd(36)} ${sorted[Math.floor(sorted.length / 2)].toFixed(1)}  [${v.map((x) => x.toFixed(1)).join(", ")}]`,
      );
    }
  };
  print(`Redis CPU per script call, µs (${ROUNDS} rounds of ${CALLS} calls; median [rounds]):`, results);

  // The end-write script, in batches: one alive key, known revision and arm, then 4 keys and 6 arguments per write.
  await redis.set("alive", "1:run");
  const endWrite = fs.readFileSync(END_WRITE, "utf8");
  const ENDS = {
    "with check": `${fs.readFileSync(LIB, "utf8")}\n${endWrite}`,
    "check stubbed out": `local function evictedSinceArm(armedKey) return false end\n${endWrite}`,
  };
  const perWrite = {};
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [form, lua] of Object.entries(ENDS)) {
      const sha = await redis.script("LOAD", lua);
      for (const size of [1, 4, 16, 64]) {
        const name = `${form}, batch of ${size}`;
        perWrite[name] ??= [];
        const before = cpuSeconds(await redis.info("cpu"));
        let inFlight = [];
        let rev = 0;
        for (let i = 0; i < CALLS; i += size) {
          const keys = ["alive", "rev:ns", "arm"];
          const args = [];
          for (let j = 0; j < size; j++) {
            const k = `{i${(i + j) % 1000}}`;
            keys.push(`${k}:e`, `${k}:w`, `${k}:t`, `${k}:lw`);
            args.push("1:run", `w${i + j}`, String(++rev), '{"i":{}}', "value", "60000");
          }
          inFlight.push(redis.evalsha(sha, keys.length, ...keys, ...args));
          if (inFlight.length * size >= 200) {
            const replies = await Promise.all(inFlight);
            if (replies.some((r) => r.some((code) => code < 0))) throw new Error(`${name}: the check refused`);
            inFlight = [];
          }
        }
        await Promise.all(inFlight);
        perWrite[name].push(((cpuSeconds(await redis.info("cpu")) - before) * 1e6) / CALLS);
      }
    }
  }
  print(`cacheEndWrite: Redis CPU per write, µs (${ROUNDS} rounds of ${CALLS} writes; median [rounds]):`, perWrite);
} finally {
  redis.disconnect();
  await redisProc.destroy();
  fs.rmSync(runDir, { recursive: true, force: true });
  process.exitCode ??= 0;
}
