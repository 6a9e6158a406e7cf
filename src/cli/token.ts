/**
 * `agentstate token create|list|revoke`: API tokens on a running server,
 * through agentstate.v1.AdminService with the admin token in
 * AGENTSTATE_TOKEN (or --token). It reads the same configuration as the
 * server to find it (address, TLS). Exit codes: 0 done, 1 the server refused
 * or could not be reached, 2 bad usage.
 */
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { ConfigError, loadConfig, type Config } from "../config/config";
import { ROLES, type Role } from "../domain/principals";
import { AdminServiceClient, Role as PbRole, type Grant, type TokenInfo } from "../gen/agentstate/v1/admin";
import { channelCredentials, serverAddress } from "./channel";

const PB_ROLE: Record<Role, PbRole> = {
  read: PbRole.ROLE_READ,
  write: PbRole.ROLE_WRITE,
  lock: PbRole.ROLE_LOCK,
  admin: PbRole.ROLE_ADMIN,
};
const ROLE_NAME = new Map(Object.entries(PB_ROLE).map(([k, v]) => [v, k]));
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

export class UsageError extends Error {}

/** "30d", "12h", "90m", "3600s" in seconds. */
export function parseTtl(s: string): number {
  const m = /^(\d{1,9})([smhd])$/.exec(s);
  if (!m || Number(m[1]) === 0)
    throw new UsageError(`--ttl must be a positive number and a unit (s, m, h, d), such as 30d; got "${s}"`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

function grantText(g: Grant): string {
  const roles = g.roles.map((r) => ROLE_NAME.get(r) ?? String(r)).join(",");
  return `${g.namespace}${g.prefix ? `/${g.prefix}*` : ""}:${roles}`;
}

export function when(d: Date | undefined): string {
  return d ? d.toISOString().replace(/\.\d+Z$/, "Z") : "-";
}

function table(tokens: TokenInfo[]): string {
  return formatTable([
    ["ID", "PRINCIPAL", "GRANTS", "CREATED", "EXPIRES", "REVOKED"],
    ...tokens.map((t) => [
      t.id,
      t.principal,
      t.grants.map(grantText).join(" "),
      when(t.createTime),
      when(t.expireTime),
      when(t.revokeTime),
    ]),
  ]);
}

/** Rows (the first one the header) as columns two spaces apart. */
export function formatTable(rows: string[][]): string {
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

export function call<Req, Res>(
  fn: (req: Req, md: Metadata, opts: object, cb: (err: ServiceError | null, res: Res) => void) => unknown,
  req: Req,
  md: Metadata,
  timeoutMs: number,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, md, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

export async function token(
  env: Record<string, string | undefined>,
  args: Record<string, string>,
  positionals: string[],
): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`agentstate token: ${err.message}\n`);
    process.exit(2);
  }
  const client = new AdminServiceClient(
    serverAddress(config),
    channelCredentials(config, {
      certFile: env.AGENTSTATE_TLS_CLIENT_CERT_FILE,
      keyFile: env.AGENTSTATE_TLS_CLIENT_KEY_FILE,
    }),
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
    const [sub, ...rest] = positionals;
    if (sub === "create") {
      if (rest.length > 0) throw new UsageError(`create takes no positional arguments, got "${rest.join(" ")}"`);
      const namespace = args.namespace;
      if (!namespace) throw new UsageError("create needs --namespace");
      const roles = (args.role ?? "").split(",").filter((r) => r !== "");
      if (roles.length === 0 || !roles.every((r) => (ROLES as readonly string[]).includes(r))) {
        throw new UsageError(`create needs --role, a comma-separated list of ${ROLES.join(", ")}`);
      }
      const ttl = args.ttl === undefined ? undefined : { seconds: parseTtl(args.ttl), nanos: 0 };
      const res = await call(
        client.createToken.bind(client),
        {
          principal: args.principal ?? `${namespace.replace(/\*$/, "all")}-${roles.join("-")}`,
          grants: [{ namespace, prefix: args.prefix ?? "", roles: roles.map((r) => PB_ROLE[r as Role]) }],
          ttl,
        },
        md,
        timeoutMs,
      );
      process.stdout.write(
        JSON.stringify({ id: res.id, token: res.token, expire_time: res.expireTime?.toISOString() ?? null }) + "\n",
      );
    } else if (sub === "list") {
      const all: TokenInfo[] = [];
      let pageToken = "";
      do {
        const res = await call(client.listTokens.bind(client), { limit: 1000, pageToken }, md, timeoutMs);
        all.push(...res.tokens);
        pageToken = res.nextPageToken;
      } while (pageToken !== "");
      process.stdout.write(table(all));
    } else if (sub === "revoke") {
      if (rest.length !== 1) throw new UsageError("revoke takes one token id");
      await call(client.revokeToken.bind(client), { id: rest[0]! }, md, timeoutMs);
      process.stdout.write(`revoked ${rest[0]}\n`);
    } else {
      throw new UsageError(`token needs create, list or revoke${sub === undefined ? "" : `, got "${sub}"`}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`agentstate token: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      const e = err as ServiceError;
      process.stderr.write(`agentstate token: ${e.details || e.message}\n`);
      process.exitCode = 1;
    }
  } finally {
    client.close();
  }
}
