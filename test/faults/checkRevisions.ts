/**
 * Revisions per namespace (DESIGN.md, data model: one revision sequence per
 * namespace, nothing ordering changes across namespaces). In every namespace
 * the revisions of its history rows (writes, deletes, expiries) and the
 * positions of its events share one sequence, so together they must be
 * exactly 1..n, each once, with n the namespace's row in namespace_revisions:
 * no gap (a revision taken by a write that then rolled back), no revision
 * given twice (two writers in one namespace not serialized on its row), no
 * change beyond the row. Nothing is compared across namespaces. Valid while
 * nothing has been trimmed (the fault run sets no retention).
 */
import { pgQuery } from "../support/pgQuery";

export interface RevisionsReport {
  namespaces: number;
  changes: number;
  violations: string[];
}

interface Row {
  namespace: string;
  n: number | null;
  distinct_n: number | null;
  lo: number | null;
  hi: number | null;
  revision: number | null;
}

export async function checkRevisions(dbUrl: string): Promise<RevisionsReport> {
  const rows = await pgQuery<Row>(
    dbUrl,
    `WITH used AS (
       SELECT namespace, revision AS r FROM kv_history
       UNION ALL SELECT namespace, position FROM events
     ), per AS (
       SELECT namespace, count(*)::float8 AS n, count(DISTINCT r)::float8 AS distinct_n,
              min(r)::float8 AS lo, max(r)::float8 AS hi
       FROM used GROUP BY namespace
     )
     SELECT coalesce(p.namespace, nr.namespace) AS namespace, p.n, p.distinct_n, p.lo, p.hi,
            nr.revision::float8 AS revision
     FROM per p FULL JOIN namespace_revisions nr ON nr.namespace = p.namespace
     ORDER BY 1`,
  );
  const violations: string[] = [];
  let changes = 0;
  for (const r of rows) {
    const n = r.n ?? 0;
    const revision = r.revision ?? 0;
    changes += n;
    if (r.n !== null && r.distinct_n !== n)
      violations.push(`${r.namespace}: ${n - r.distinct_n!} revision(s) given twice`);
    if (n !== revision || (n > 0 && (r.lo !== 1 || r.hi !== revision))) {
      violations.push(
        `${r.namespace}: its changes hold revisions ${r.lo ?? "-"}..${r.hi ?? "-"} (${n} of them), its revision row says ${r.revision ?? "none"}`,
      );
    }
  }
  return { namespaces: rows.length, changes, violations };
}
