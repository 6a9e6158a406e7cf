/**
 * What the commands that talk to a running server's AdminService share
 * (`agentstate token`, `agentstate audit`): the connection (address and TLS
 * from the same configuration as the server, channel.ts), the admin token in
 * AGENTSTATE_TOKEN (or --token), the timeout (AGENTSTATE_CLI_TIMEOUT_MS), one
 * call as a promise, and the exit codes: 0 done, 1 the server refused or
 * could not be reached, 2 bad usage.
 */
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { ConfigError, loadConfig, type Config } from "../config/config";
import { ROLES, type Role } from "../domain/principals";
import { AdminServiceClient, Role as PbRole } from "../gen/agentstate/v1/admin";
import { channelCredentials, channelOptions, serverAddress } from "./channel";

/** Bad usage: printed, exit 2. */
export class UsageError extends Error {}

export interface AdminSession {
  client: AdminServiceClient;
  /** Runs one unary call with the admin token and the timeout. */
  call<Req, Res>(
    fn: (req: Req, md: Metadata, opts: object, cb: (err: ServiceError | null, res: Res) => void) => unknown,
    req: Req,
  ): Promise<Res>;
}

/**
 * Runs `body` with a session to the server, then closes it; prints what went
 * wrong as `agentstate <command>: ...` and sets the exit code.
 */
export async function withAdminSession(
  command: string,
  env: Record<string, string | undefined>,
  body: (session: AdminSession) => Promise<void>,
): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`agentstate ${command}: ${err.message}\n`);
    process.exit(2);
  }
  const client = new AdminServiceClient(
    serverAddress(config),
    channelCredentials(config, {
      certFile: env.AGENTSTATE_TLS_CLIENT_CERT_FILE,
      keyFile: env.AGENTSTATE_TLS_CLIENT_KEY_FILE,
    }),
    channelOptions(config),
  );
  try {
    const rawTimeout = env.AGENTSTATE_CLI_TIMEOUT_MS ?? "10000";
    if (!/^\d{1,9}$/.test(rawTimeout) || Number(rawTimeout) < 1) {
      throw new UsageError(`AGENTSTATE_CLI_TIMEOUT_MS must be a positive integer, got "${rawTimeout}"`);
    }
    const timeoutMs = Number(rawTimeout);
    const admin = env.AGENTSTATE_TOKEN;
    if (!admin) throw new UsageError("set AGENTSTATE_TOKEN (or --token) to an admin token");
    const md = new Metadata();
    md.set("authorization", `Bearer ${admin}`);
    await body({
      client,
      call: (fn, req) =>
        new Promise((resolve, reject) =>
          fn.call(client, req, md, { deadline: Date.now() + timeoutMs }, (err, res) =>
            err ? reject(err) : resolve(res),
          ),
        ),
    });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`agentstate ${command}: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      const e = err as ServiceError;
      process.stderr.write(`agentstate ${command}: ${e.details || e.message}\n`);
      process.exitCode = 1;
    }
  } finally {
    client.close();
  }
}

/** Rows (the first a header) as left-aligned columns two spaces apart, one line each. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

/** The roles' names on the command line and on the wire. */
export const PB_ROLE: Readonly<Record<Role, PbRole>> = {
  read: PbRole.ROLE_READ,
  write: PbRole.ROLE_WRITE,
  lock: PbRole.ROLE_LOCK,
  admin: PbRole.ROLE_ADMIN,
};
export const ROLE_NAME: ReadonlyMap<PbRole, string> = new Map(Object.entries(PB_ROLE).map(([k, v]) => [v, k]));

/** A comma-separated --role list on the wire (bad usage when a name is not a role, or none is given and one is required). */
export function parseRoles(raw: string | undefined, flag: string, required: boolean): PbRole[] {
  const names = (raw ?? "").split(",").filter((r) => r !== "");
  if ((required && names.length === 0) || !names.every((r) => (ROLES as readonly string[]).includes(r))) {
    throw new UsageError(`${flag} must be a comma-separated list of ${ROLES.join(", ")}`);
  }
  return names.map((r) => PB_ROLE[r as Role]);
}

/** A time as the tables print it (to the second), "-" when unset. */
export function when(d: Date | undefined): string {
  return d ? d.toISOString().replace(/\.\d+Z$/, "Z") : "-";
}
