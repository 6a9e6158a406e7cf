/**
 * `agentstate serve`: the process concerns of a running server. Reads the
 * configuration, builds the services (compose/buildServices.ts wires the
 * stores), serves gRPC and metrics, and shuts down gracefully on SIGTERM or
 * SIGINT: stop taking calls, end long waits, drain, close the pools, stop the
 * embedded Postgres, exit 0.
 */
import { buildServices } from "../compose/buildServices";
import { ConfigError, isLoopback, loadConfig } from "../config/config";
import { DependencyUnreachableError } from "../errors/startup";
import { Logger } from "../log/Logger";

/** Runs the server until a signal stops it; `env` is the environment plus the command line's flags. */
export async function serve(env: Record<string, string | undefined>): Promise<void> {
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      const line = { level: "error", time: new Date().toISOString(), pid: process.pid, msg: "invalid configuration" };
      process.stderr.write(JSON.stringify({ ...line, error: err.message }) + "\n");
      process.exit(2);
    }
    throw err;
  }
  const format = config.logFormat === "auto" ? (process.stdout.isTTY ? "pretty" : "json") : config.logFormat;
  const log = new Logger(config.logLevel, { service: "agentstate", pid: process.pid }, undefined, format);
  process.on("unhandledRejection", (err) => {
    const e = err instanceof Error ? err : new Error(String(err));
    log.error("unhandled rejection", { error: e.message, stack: e.stack });
  });

  let services;
  let address;
  try {
    services = await buildServices(config, log);
    address = await services.server.listen(config.host, config.port);
  } catch (err) {
    failedToStart(log, err);
  }
  const { server, metrics, database, close, bootstrapToken, authorizeHttp } = services;
  if (bootstrapToken !== undefined) {
    // On purpose outside the log: shown once, on the first start, to whoever started the server.
    process.stderr.write(
      `agentstate: bootstrap admin token (shown once; revoke it with \`agentstate token revoke bootstrap\` once you have made your own):\n${bootstrapToken}\n`,
    );
  }
  // Metrics are an aid, not a dependency: a taken port is logged, not fatal.
  const metricsHttp =
    config.metricsPort >= 0
      ? await metrics.listen(config.metricsHost, config.metricsPort, authorizeHttp).catch((err: Error) => {
          log.warn("metrics endpoint not started", { port: config.metricsPort, error: err.message });
          return undefined;
        })
      : undefined;
  if (config.insecure && config.auth === undefined && !isLoopback(config.host)) {
    log.warn(
      "serving gRPC beyond loopback with authentication off (AGENTSTATE_INSECURE=1): anyone who can reach the port can read and change every namespace",
      { host: config.host },
    );
  }
  if (config.insecure && config.tls === undefined && !isLoopback(config.host)) {
    log.warn(
      "serving plaintext gRPC beyond loopback (AGENTSTATE_INSECURE=1): anyone who can reach the port can read and change every namespace",
      {
        host: config.host,
      },
    );
  }
  log.announce("listening", {
    metrics: metricsHttp?.address,
    address,
    tls: config.tls ? (config.tls.clientCaFile ? "mtls" : "tls") : "off",
    auth: config.auth ? "required" : "off",
    database,
    cache: config.redisUrl ? "redis" : "off",
    locks: config.redlockUrls.length > 0 ? `redlock(${config.redlockUrls.length})` : "postgres",
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal });
    await server.shutdown(config.shutdownGraceMs);
    metricsHttp?.server.close();
    await close();
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

/**
 * Logs why the server could not start, at error level, and exits 1 (2 for a
 * configuration error found late, such as a TLS key that does not match). A
 * dependency that could not be reached is named with where and why (never
 * credentials); anything else is a bug, logged with its stack.
 */
function failedToStart(log: Logger, err: unknown): never {
  if (err instanceof ConfigError) {
    // Found only once files are read (a TLS key that does not match its certificate).
    log.error("invalid configuration", { error: err.message });
    process.exit(2);
  }
  if (err instanceof DependencyUnreachableError) {
    const { dependency, target, reason } = err;
    log.error("failed to start", { error: err.message, dependency, target, reason });
  } else {
    const e = err instanceof Error ? err : new Error(String(err));
    log.error("failed to start", { error: e.message, stack: e.stack });
  }
  process.exit(1);
}
