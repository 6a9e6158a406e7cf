// `npm start`: builds when the build is missing or older than its sources,
// then runs `agentstate serve` in this same process. package.json starts it
// with `exec`, so npm's child is this process itself: the SIGTERM or SIGINT
// that npm forwards when `npm start` is stopped reaches the server, which
// stops the embedded Postgres and exits. Flags after `npm start --` go to
// `agentstate serve` (e.g. `npm start -- --port 0`).
import { spawnSync } from "node:child_process";
import process from "node:process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(import.meta.url), "..", "..");
/** Written by `npm run build` when it has finished (scripts/build-stamp.mjs). */
const STAMP = join(root, "dist", ".build-stamp");
/** What the build reads: a change to any of it makes the build stale. */
const INPUTS = ["src", "proto", "migrations", "scripts", "tsconfig.json", "buf.gen.yaml", "package-lock.json"];
/** Written by the build itself, so not an input. */
const GENERATED = join(root, "src", "gen");

function newestMtime(path) {
  if (path === GENERATED || !existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  // Files only: a directory's own mtime moves when the build regenerates
  // src/gen inside it (also from a client package's prepack), which is no change.
  let newest = 0;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

function buildIsFresh() {
  if (!existsSync(STAMP)) return false;
  const built = statSync(STAMP).mtimeMs;
  return INPUTS.every((p) => newestMtime(join(root, p)) <= built);
}

if (!buildIsFresh()) {
  process.stderr.write("agentstate: building (sources changed since the last build)\n");
  const npm = process.env.npm_execpath;
  const r = npm
    ? spawnSync(process.execPath, [npm, "run", "build"], { cwd: root, stdio: "inherit" })
    : spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const { main } = createRequire(import.meta.url)(join(root, "dist", "src", "cli", "main.js"));
main(["serve", ...process.argv.slice(2)]);
