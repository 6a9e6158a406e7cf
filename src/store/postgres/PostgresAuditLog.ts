/**
 * PostgresAuditLog: the audit trail (domain/audit.ts) as kv_history and
 * events keep it (principal and request_id, migrations/0012), with
 * audit_changes for the changes without a history of their own (checkpoints,
 * store items: migrations/0015), read by
 * sql/audit_changes.sql: a namespace's changes newest first, by the audit
 * indexes, never a value.
 *
 * Work per call is bounded: without a principal or prefix filter a page reads
 * `limit + 1` rows per table; with one, at most SCAN_ROWS per table, and a
 * page that found fewer matches than asked for ends where the scan stopped
 * (its next position is the oldest row scanned), so a rare principal costs
 * several short pages, never one unbounded scan.
 */
import type { Pool } from "pg";
import type { AuditLog, ChangeOp, ChangePage, ChangeQuery, ChangeRecord } from "../../domain/audit";
import { translatePgError } from "./pgErrors";
import { sql } from "./sql";

/** Rows of each table one filtered page reads at most. */
export const AUDIT_SCAN_ROWS = 5000;

interface AuditRow {
  scanned_n: number;
  edge_us: string;
  edge_rev: number;
  kind: number | null;
  at_us: string;
  created_at: Date;
  revision: number;
  name: string;
  op: number;
  version: number;
  principal: string | null;
  request_id: string | null;
}

/**
 * kv_history.op, 4: an event, and audit_changes.op (migrations/0015). The numbers are written by
 * the statements (test/unit/auditOps.test.ts checks each statement's literal against this table).
 */
export const AUDIT_OPS: Readonly<Record<number, ChangeOp>> = {
  1: "put",
  2: "delete",
  3: "expire",
  4: "append",
  5: "checkpoint_put",
  6: "checkpoint_writes",
  7: "thread_delete",
  8: "thread_copy",
  9: "checkpoint_prune",
  10: "checkpoint_delete_runs",
  11: "item_put",
  12: "item_delete",
};

function toRecord(r: AuditRow): ChangeRecord {
  return {
    op: AUDIT_OPS[r.op] ?? "put",
    key: r.kind === 1 ? r.name : undefined,
    stream: r.kind === 2 ? r.name : undefined,
    target: r.kind === 3 ? r.name : undefined,
    revision: Number(r.revision),
    version: Number(r.version),
    principal: r.principal ?? undefined,
    requestId: r.request_id ?? undefined,
    time: r.created_at,
  };
}

export class PostgresAuditLog implements AuditLog {
  constructor(
    private readonly pool: Pool,
    /** Rows of each table a filtered page reads at most (tests make it small). */
    private readonly scanRows = AUDIT_SCAN_ROWS,
  ) {}

  async changes(q: ChangeQuery): Promise<ChangePage> {
    const filtered = q.principal !== undefined || q.prefix !== "";
    const scan = filtered ? Math.max(this.scanRows, q.limit + 1) : q.limit + 1;
    let rows: AuditRow[];
    try {
      rows = (
        await this.pool.query<AuditRow>(sql("audit_changes"), [
          q.namespace,
          q.since ?? "-infinity",
          q.until ?? "infinity",
          q.after === undefined ? null : q.after.atMicros.toString(),
          q.after === undefined ? null : q.after.revision,
          q.principal ?? null,
          q.prefix,
          scan,
          q.limit + 1,
        ])
      ).rows;
    } catch (err) {
      throw translatePgError(err);
    }
    const first = rows[0];
    if (first === undefined) return { changes: [], next: undefined };
    const matched = rows.filter((r) => r.kind !== null);
    if (matched.length > q.limit) {
      const last = matched[q.limit - 1]!;
      return {
        changes: matched.slice(0, q.limit).map(toRecord),
        next: { atMicros: BigInt(last.at_us), revision: Number(last.revision) },
      };
    }
    return {
      changes: matched.map(toRecord),
      next: first.scanned_n >= scan ? { atMicros: BigInt(first.edge_us), revision: Number(first.edge_rev) } : undefined,
    };
  }
}
