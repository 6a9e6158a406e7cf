// Experiment: V8 flags set at load time (flags NODE_OPTIONS does not accept),
// from the server's BENCH_V8_FLAGS, e.g. for the per-wake-up cost at c = 1:
//   node bench/run.mjs --only health,get-hit,cas-new --levels 1,64 \
//     --ab-import bench/experiments/v8-flags.mjs --ab-env BENCH_V8_FLAGS=--no-memory-reducer
import process from "node:process";
import v8 from "node:v8";

for (const flag of (process.env.BENCH_V8_FLAGS ?? "").split(/\s+/).filter(Boolean)) v8.setFlagsFromString(flag);
