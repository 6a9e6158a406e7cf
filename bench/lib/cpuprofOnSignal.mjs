// Preloaded into the server by bench/run.mjs --fanout-profile (node --import):
// SIGUSR2 starts a V8 CPU profile of the main thread (node:inspector, in
// process), the next SIGUSR2 stops it and writes it to
// $BENCH_CPUPROF_DIR/<n>.cpuprofile, then "<file>\n" to <file>.done so the
// bench knows it is complete. Unlike node --cpu-prof, it covers only the
// window the bench chooses (the appends of one delivery measurement), not the
// server's start and the subscribers' catch-up.
import * as fs from "node:fs";
import * as inspector from "node:inspector";
import * as path from "node:path";
import process from "node:process";

const dir = process.env.BENCH_CPUPROF_DIR;
const session = new inspector.Session();
session.connect();
let on = false;
let n = 0;
const post = (method, params) =>
  new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));

process.on("SIGUSR2", () => {
  if (!on) {
    on = true;
    void post("Profiler.enable")
      .then(() => post("Profiler.setSamplingInterval", { interval: 100 }))
      .then(() => post("Profiler.start"));
    return;
  }
  on = false;
  void post("Profiler.stop").then(({ profile }) => {
    const file = path.join(dir, `${++n}.cpuprofile`);
    fs.writeFileSync(file, JSON.stringify(profile));
    fs.writeFileSync(`${file}.done`, `${file}\n`);
  });
});
