/**
 * `agentstate grant add|revoke|list`: roles stored in the server for named
 * principals (certificate principals and JWT subjects; see
 * domain/grants.ts), through agentstate.v1.AdminService with the admin token
 * in AGENTSTATE_TOKEN (or --token), like `agentstate token`. Exit codes: 0
 * done, 1 the server refused or could not be reached, 2 bad usage.
 */
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { ConfigError, loadConfig, type Config } from "../config/config";
import { ROLES, type Role } from "../domain/principals";
import { AdminServiceClient, Role as PbRole, type PrincipalGrant } from "../gen/agentstate/v1/admin";
import { channelCredentials, serverAddress } from "./channel";
import { call, formatTable, UsageError, when } from "./token";

const PB_ROLE: Record<Role, PbRole> = {
  read: PbRole.ROLE_READ,
  write: PbRole.ROLE_WRITE,
  lock: PbRole.ROLE_LOCK,
  admin: PbRole.ROLE_ADMIN,
};
const ROLE_NAME = new Map(Object.entries(PB_ROLE).map(([k, v]) => [v, k]));

function roles(raw: string | undefined, required: boolean): PbRole[] {
  const names = (raw ?? "").split(",").filter((r) => r !== "");
  if ((required && names.length === 0) || !names.every((r) => (ROLES as readonly string[]).includes(r))) {
    throw new UsageError(`--role must be a comma-separated list of ${ROLES.join(", ")}`);
  }
  return names.map((r) => PB_ROLE[r as Role]);
}

function grantRow(g: PrincipalGrant): string[] {
  return [
    g.principal,
    g.grant?.namespace ?? "",
    g.grant?.prefix || "-",
    (g.grant?.roles ?? []).map((r) => ROLE_NAME.get(r) ?? String(r)).join(","),
    when(g.updateTime),
  ];
}

export async function grant(
  env: Record<string, string | undefined>,
  args: Record<string, string>,
  positionals: string[],
): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`agentstate grant: ${err.message}\n`);
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
    if (rest.length > 0) throw new UsageError(`grant ${sub} takes no positional arguments, got "${rest.join(" ")}"`);
    const header = ["PRINCIPAL", "NAMESPACE", "PREFIX", "ROLES", "UPDATED"];
    if (sub === "add") {
      if (!args.principal || !args.namespace) throw new UsageError("add needs --principal and --namespace");
      const res = await call(
        client.grantRoles.bind(client),
        {
          principal: args.principal,
          grant: { namespace: args.namespace, prefix: args.prefix ?? "", roles: roles(args.role, true) },
        },
        md,
        timeoutMs,
      );
      process.stdout.write(formatTable([header, grantRow(res.grant!)]));
    } else if (sub === "revoke") {
      if (!args.principal || !args.namespace) throw new UsageError("revoke needs --principal and --namespace");
      const res = await call(
        client.revokeGrant.bind(client),
        {
          principal: args.principal,
          namespace: args.namespace,
          prefix: args.prefix ?? "",
          roles: roles(args.role, false),
        },
        md,
        timeoutMs,
      );
      process.stdout.write(res.grant ? formatTable([header, grantRow(res.grant)]) : "grant removed\n");
    } else if (sub === "list") {
      const all: PrincipalGrant[] = [];
      let pageToken = "";
      do {
        const res = await call(
          client.listGrants.bind(client),
          { principal: args.principal ?? "", limit: 1000, pageToken },
          md,
          timeoutMs,
        );
        all.push(...res.grants);
        pageToken = res.nextPageToken;
      } while (pageToken !== "");
      process.stdout.write(formatTable([header, ...all.map(grantRow)]));
    } else {
      throw new UsageError(`grant needs add, revoke or list${sub === undefined ? "" : `, got "${sub}"`}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`agentstate grant: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      const e = err as ServiceError;
      process.stderr.write(`agentstate grant: ${e.details || e.message}\n`);
      process.exitCode = 1;
    }
  } finally {
    client.close();
  }
}
