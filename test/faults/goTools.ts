/**
 * The Go programs the fault harness needs, built from the Go module proxy
 * alone (pinned versions, checksums in go.sum):
 *  - the Porcupine linearizability checker in test/faults/checker (its own
 *    go.mod), built with `go build` into a cache directory;
 *  - toxiproxy-server v2.12.0: $TOXIPROXY_SERVER, `toxiproxy-server` on the
 *    PATH or in $GOBIN/$GOPATH/bin, or else `go install`ed into the cache
 *    directory (the module names its binary "server").
 * The cache directory is $AGENTSTATE_FAULTS_CACHE or ~/.cache/agentstate-faults.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** Repo root: this file compiles to dist/test/faults/. */
export const REPO_ROOT = path.resolve(__dirname, "../../..");
export const CHECKER_SRC = path.join(REPO_ROOT, "test", "faults", "checker");
export const TOXIPROXY_VERSION = "v2.12.0";
const TOXIPROXY_PKG = "github.com/Shopify/toxiproxy/v2/cmd/server";

export function cacheDir(): string {
  return process.env.AGENTSTATE_FAULTS_CACHE ?? path.join(os.homedir(), ".cache", "agentstate-faults");
}

function goBin(): string {
  return process.env.GO ?? "go";
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/** `go build` the checker (incremental: fast when nothing changed); returns the binary's path. */
export async function buildChecker(): Promise<string> {
  const dir = cacheDir();
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, "agentstate-porcupine-checker");
  await run(goBin(), ["build", "-mod=readonly", "-o", out, "."], { cwd: CHECKER_SRC });
  return out;
}

function onPath(name: string): string | undefined {
  for (const d of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!d) continue;
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A toxiproxy-server binary, installing the pinned version into the cache directory if none is found. */
export async function findToxiproxy(): Promise<string> {
  const fromEnv = process.env.TOXIPROXY_SERVER;
  if (fromEnv) return fromEnv;
  const found = onPath("toxiproxy-server");
  if (found) return found;
  const gopath = process.env.GOPATH ?? path.join(os.homedir(), "go");
  for (const p of [process.env.GOBIN, path.join(gopath, "bin")]) {
    if (!p) continue;
    const candidate = path.join(p, "toxiproxy-server");
    if (fs.existsSync(candidate)) return candidate;
  }
  const dir = path.join(cacheDir(), `toxiproxy-${TOXIPROXY_VERSION}`);
  const bin = path.join(dir, "server");
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(dir, { recursive: true });
  await run(goBin(), ["install", `${TOXIPROXY_PKG}@${TOXIPROXY_VERSION}`], { env: { ...process.env, GOBIN: dir } });
  return bin;
}
