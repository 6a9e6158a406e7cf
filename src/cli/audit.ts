/**
 * `agentstate audit`: the audit trail of a namespace on a running server (who
 * changed what, and when), through AdminService.ListChanges, newest first,
 * paging until --limit changes are printed or none are left. A readable
 * table by default, one JSON object per change with --json. Never a value:
 * the server does not keep them in the trail. Connection, admin token and exit
 * codes as `agentstate token` (adminClient.ts).
 */
import { ChangeOp, type Change } from "../gen/agentstate/v1/admin";
import { formatTable, UsageError, withAdminSession } from "./adminClient";

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
/** Most changes one command prints (--limit). */
export const AUDIT_CLI_MAX = 1_000_000;
const PAGE = 1000;

const OP_NAME: Record<number, string> = {
  [ChangeOp.CHANGE_OP_PUT]: "put",
  [ChangeOp.CHANGE_OP_DELETE]: "delete",
  [ChangeOp.CHANGE_OP_EXPIRE]: "expire",
  [ChangeOp.CHANGE_OP_APPEND]: "append",
  [ChangeOp.CHANGE_OP_CHECKPOINT_PUT]: "checkpoint_put",
  [ChangeOp.CHANGE_OP_CHECKPOINT_WRITES]: "checkpoint_writes",
  [ChangeOp.CHANGE_OP_THREAD_DELETE]: "thread_delete",
  [ChangeOp.CHANGE_OP_THREAD_COPY]: "thread_copy",
  [ChangeOp.CHANGE_OP_CHECKPOINT_PRUNE]: "checkpoint_prune",
  [ChangeOp.CHANGE_OP_CHECKPOINT_DELETE_RUNS]: "checkpoint_delete_runs",
  [ChangeOp.CHANGE_OP_ITEM_PUT]: "item_put",
  [ChangeOp.CHANGE_OP_ITEM_DELETE]: "item_delete",
};

/** "1h" (that long before `now`; units s, m, h, d) or an ISO 8601 time such as 2026-12-07T09:00:00Z. */
export function parseWhen(flag: string, s: string, now: number): Date {
  const rel = /^(\d{1,9})([smhd])$/.exec(s);
  if (rel) return new Date(now - Number(rel[1]) * UNITS[rel[2]!]! * 1000);
  const t = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?$/.test(s) ? Date.parse(s) : NaN;
  if (Number.isNaN(t)) {
    throw new UsageError(
      `--${flag} must be a duration before now (such as 90s, 15m, 1h, 7d) or an ISO 8601 time; got "${s}"`,
    );
  }
  return new Date(t);
}

/** A name as a table cell: as it is when it has no space or control character, else JSON-quoted. */
function cell(s: string): string {
  return /^[^\s\p{C}]+$/u.test(s) ? s : JSON.stringify(s);
}

function principalText(c: Change): string {
  if (!c.principalRecorded) return "-";
  return c.principal === "" ? "(anonymous)" : cell(c.principal);
}

function tableOf(changes: Change[]): string {
  return formatTable([
    ["TIME", "REVISION", "OP", "KEY/STREAM/TARGET", "VERSION", "PRINCIPAL", "REQUEST ID"],
    ...changes.map((c) => [
      c.time ? c.time.toISOString() : "-",
      String(c.revision),
      OP_NAME[c.op] ?? String(c.op),
      c.op === ChangeOp.CHANGE_OP_APPEND ? `stream ${cell(c.stream)}` : c.target !== "" ? cell(c.target) : cell(c.key),
      String(c.version),
      principalText(c),
      c.requestId === "" ? "-" : c.requestId,
    ]),
  ]);
}

function jsonOf(c: Change): string {
  return JSON.stringify({
    time: c.time?.toISOString() ?? null,
    revision: c.revision,
    op: OP_NAME[c.op] ?? c.op,
    ...(c.op === ChangeOp.CHANGE_OP_APPEND
      ? { stream: c.stream }
      : c.target !== ""
        ? { target: c.target }
        : { key: c.key }),
    version: c.version,
    principal: c.principalRecorded ? c.principal : null,
    request_id: c.principalRecorded ? c.requestId : null,
  });
}

export async function audit(
  env: Record<string, string | undefined>,
  args: Record<string, string>,
  positionals: string[],
): Promise<void> {
  await withAdminSession("audit", env, async ({ client, call }) => {
    if (positionals.length > 0) throw new UsageError(`audit takes no positional arguments, got "${positionals[0]}"`);
    const namespace = args.namespace;
    if (!namespace) throw new UsageError("audit needs --namespace");
    const now = Date.now();
    const since = args.since === undefined ? undefined : parseWhen("since", args.since, now);
    const until = args.until === undefined ? undefined : parseWhen("until", args.until, now);
    const rawLimit = args.limit ?? "100";
    if (!/^\d{1,7}$/.test(rawLimit) || Number(rawLimit) < 1 || Number(rawLimit) > AUDIT_CLI_MAX) {
      throw new UsageError(`--limit must be an integer from 1 to ${AUDIT_CLI_MAX}, got "${rawLimit}"`);
    }
    const json = args.json === "true";
    let left = Number(rawLimit);
    const shown: Change[] = [];
    let pageToken = "";
    do {
      const res = await call(client.listChanges, {
        namespace,
        sinceTime: since,
        untilTime: until,
        principal: args.principal ?? "",
        keyPrefix: args["key-prefix"] ?? "",
        limit: Math.min(PAGE, left),
        pageToken,
      });
      if (json) process.stdout.write(res.changes.map((c) => jsonOf(c) + "\n").join(""));
      else shown.push(...res.changes);
      left -= res.changes.length;
      pageToken = res.nextPageToken;
    } while (pageToken !== "" && left > 0);
    if (!json) process.stdout.write(tableOf(shown));
    if (pageToken !== "") process.stderr.write(`agentstate audit: more changes than --limit ${rawLimit}\n`);
  });
}
