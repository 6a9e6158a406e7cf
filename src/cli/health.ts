/**
 * `agentstate health`: calls grpc.health.v1.Health/Check on a running server
 * and exits 0 only when it answers SERVING; 1 when it answers anything else,
 * cannot be reached, or does not answer within the timeout
 * (AGENTSTATE_HEALTHCHECK_TIMEOUT_MS, default 2000). It reads the same
 * configuration as the server, so it checks the port the server listens on.
 * The container image's HEALTHCHECK runs it (dist/src/healthcheck.js).
 */
import { credentials, loadPackageDefinition, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import { ConfigError, loadConfig } from "../config/config";

type HealthClient = new (
  addr: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => {
  check(req: object, opts: object, cb: (err: ServiceError | null, res: { status: string }) => void): void;
  close(): void;
};

export async function health(env: Record<string, string | undefined>): Promise<void> {
  let host: string;
  let port: number;
  try {
    ({ host, port } = loadConfig(env));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`health check: ${err.message}\n`);
    process.exit(2);
  }
  const raw = env.AGENTSTATE_HEALTHCHECK_TIMEOUT_MS ?? "2000";
  const timeoutMs = Number(raw);
  if (!/^\d+$/.test(raw) || timeoutMs < 1) {
    process.stderr.write(`health check: AGENTSTATE_HEALTHCHECK_TIMEOUT_MS must be a positive integer, got "${raw}"\n`);
    process.exit(2);
  }
  // `enums: String`: the status arrives as its name ("SERVING"), not its number.
  const pkg = loadPackageDefinition(loadSync(protoPath, { enums: String })) as unknown as {
    grpc: { health: { v1: { Health: HealthClient } } };
  };
  // A wildcard listen address is reached through loopback.
  const target = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  const address = target.includes(":") ? `[${target}]:${port}` : `${target}:${port}`;
  const client = new pkg.grpc.health.v1.Health(address, credentials.createInsecure());
  const serving = await new Promise<boolean>((resolve) =>
    client.check({ service: "" }, { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) process.stderr.write(`health check failed: ${address}: ${err.details || err.message}\n`);
      else if (res.status !== "SERVING") process.stderr.write(`health check: ${address} is ${res.status}\n`);
      resolve(!err && res.status === "SERVING");
    }),
  );
  client.close();
  process.exit(serving ? 0 : 1);
}
