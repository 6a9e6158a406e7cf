/**
 * `agentstate token create|list|revoke`: API tokens on a running server,
 * through agentstate.v1.AdminService with the admin token in
 * AGENTSTATE_TOKEN (or --token). It reads the same configuration as the
 * server to find it (address, TLS). Exit codes: 0 done, 1 the server refused
 * or could not be reached, 2 bad usage.
 */
import { ROLES, type Role } from "../domain/principals";
import { type Grant, type TokenInfo } from "../gen/agentstate/v1/admin";
import { formatTable, PB_ROLE, ROLE_NAME, UsageError, when, withAdminSession } from "./adminClient";
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

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

function table(tokens: TokenInfo[]): string {
  const rows = [
    ["ID", "PRINCIPAL", "GRANTS", "CREATED", "EXPIRES", "REVOKED"],
    ...tokens.map((t) => [
      t.id,
      t.principal,
      t.grants.map(grantText).join(" "),
      when(t.createTime),
      when(t.expireTime),
      when(t.revokeTime),
    ]),
  ];
  return formatTable(rows);
}

export async function token(
  env: Record<string, string | undefined>,
  args: Record<string, string>,
  positionals: string[],
): Promise<void> {
  await withAdminSession("token", env, async ({ client, call }) => {
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
      const res = await call(client.createToken, {
        principal: args.principal ?? `${namespace.replace(/\*$/, "all")}-${roles.join("-")}`,
        grants: [{ namespace, prefix: args.prefix ?? "", roles: roles.map((r) => PB_ROLE[r as Role]) }],
        ttl,
      });
      process.stdout.write(
        JSON.stringify({ id: res.id, token: res.token, expire_time: res.expireTime?.toISOString() ?? null }) + "\n",
      );
    } else if (sub === "list") {
      const all: TokenInfo[] = [];
      let pageToken = "";
      do {
        const res = await call(client.listTokens, { limit: 1000, pageToken });
        all.push(...res.tokens);
        pageToken = res.nextPageToken;
      } while (pageToken !== "");
      process.stdout.write(table(all));
    } else if (sub === "revoke") {
      if (rest.length !== 1) throw new UsageError("revoke takes one token id");
      await call(client.revokeToken, { id: rest[0]! });
      process.stdout.write(`revoked ${rest[0]}\n`);
    } else {
      throw new UsageError(`token needs create, list or revoke${sub === undefined ? "" : `, got "${sub}"`}`);
    }
  });
}
