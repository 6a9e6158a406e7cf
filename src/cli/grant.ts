/**
 * `agentstate grant add|revoke|list`: roles stored in the server for named
 * principals (certificate principals and JWT subjects; see
 * domain/grants.ts), through agentstate.v1.AdminService with the admin token
 * in AGENTSTATE_TOKEN (or --token), like `agentstate token`. Exit codes: 0
 * done, 1 the server refused or could not be reached, 2 bad usage.
 */
import { type PrincipalGrant } from "../gen/agentstate/v1/admin";
import { formatTable, parseRoles, ROLE_NAME, UsageError, when, withAdminSession } from "./adminClient";

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
  await withAdminSession("grant", env, async ({ client, call }) => {
    const [sub, ...rest] = positionals;
    if (rest.length > 0) throw new UsageError(`grant ${sub} takes no positional arguments, got "${rest.join(" ")}"`);
    const header = ["PRINCIPAL", "NAMESPACE", "PREFIX", "ROLES", "UPDATED"];
    if (sub === "add") {
      if (!args.principal || !args.namespace) throw new UsageError("add needs --principal and --namespace");
      const res = await call(client.grantRoles, {
        principal: args.principal,
        grant: { namespace: args.namespace, prefix: args.prefix ?? "", roles: parseRoles(args.role, "--role", true) },
      });
      process.stdout.write(formatTable([header, grantRow(res.grant!)]));
    } else if (sub === "revoke") {
      if (!args.principal || !args.namespace) throw new UsageError("revoke needs --principal and --namespace");
      const res = await call(client.revokeGrant, {
        principal: args.principal,
        namespace: args.namespace,
        prefix: args.prefix ?? "",
        roles: parseRoles(args.role, "--role", false),
      });
      process.stdout.write(res.grant ? formatTable([header, grantRow(res.grant)]) : "grant removed\n");
    } else if (sub === "list") {
      const all: PrincipalGrant[] = [];
      let pageToken = "";
      do {
        const res = await call(client.listGrants, { principal: args.principal ?? "", limit: 1000, pageToken });
        all.push(...res.grants);
        pageToken = res.nextPageToken;
      } while (pageToken !== "");
      process.stdout.write(formatTable([header, ...all.map(grantRow)]));
    } else {
      throw new UsageError(`grant needs add, revoke or list${sub === undefined ? "" : `, got "${sub}"`}`);
    }
  });
}
