// Experiment (--ab-import): server B runs as EXP_WORKERS (default 2) node:cluster
// workers sharing the gRPC port; the primary only forks them and passes on
// SIGTERM/SIGINT. Only the first worker serves metrics, so B's CPU and cache
// columns are partial. Use with --ghz-connections 2 or more: the primary hands
// out connections round-robin, and one connection would reach one worker.
//   node bench/run.mjs --only health,get-hit,cas-new,cas-hot --levels 64 --duration 5 \
//     --rate-duration 0 --ghz-connections 2 --ab-import bench/experiments/cluster-workers.mjs
import cluster from "node:cluster";
import process from "node:process";

const workers = Number(process.env.EXP_WORKERS ?? 2);
if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) {
    cluster.fork({ AGENTSTATE_METRICS_PORT: i === 0 ? process.env.AGENTSTATE_METRICS_PORT : "-1" });
  }
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.kill(sig);
    });
  }
  cluster.on("exit", () => {
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  });
  // The primary never runs the server itself (main.js runs after this import).
  await new Promise(() => {});
}
