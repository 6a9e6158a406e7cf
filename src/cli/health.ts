/**
 * `agentstate health`: calls grpc.health.v1.Health/Check on a running server
 * and exits 0 only when it answers SERVING; 1 when it answers anything else,
 * cannot be reached, or does not answer within the timeout
 * (AGENTSTATE_HEALTHCHECK_TIMEOUT_MS, default 2000). It reads the same
 * configuration as the server, so it checks the port the server listens on.
 * The container image's HEALTHCHECK runs it (dist/src/healthcheck.js).
 *
 * When the server serves TLS (AGENTSTATE_TLS_CERT_FILE set) it connects with
 * TLS, trusting AGENTSTATE_TLS_CA_FILE (default: the certificate file itself,
 * right for a self-signed certificate). It checks the chain, not the host
 * name: it talks to its own server over loopback, whatever name the
 * certificate carries. Under mTLS it presents the server's own certificate
 * and key, which must then be signed by the client CA too.
 */
import { type ChannelCredentials, type ChannelOptions, loadPackageDefinition, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import { ConfigError, loadConfig, type Config } from "../config/config";
import { channelCredentials, channelOptions, serverAddress } from "./channel";

type HealthClient = new (
  addr: string,
  creds: ChannelCredentials,
  options?: ChannelOptions,
) => {
  check(req: object, opts: object, cb: (err: ServiceError | null, res: { status: string }) => void): void;
  close(): void;
};

export async function health(env: Record<string, string | undefined>): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(env);
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
  const address = serverAddress(config);
  const client = new pkg.grpc.health.v1.Health(address, channelCredentials(config), channelOptions(config));
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
