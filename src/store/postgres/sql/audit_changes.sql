-- audit_changes: one page of a namespace's changes (key writes from
-- kv_history, appended events from events, checkpoint and store changes from
-- the audit_changes table, migrations/0015), newest first, for
-- AdminService.ListChanges (PostgresAuditLog). Never a value: who, what, when.
-- Order: (created_at, revision) descending; revisions are per namespace and
-- shared by key writes and events, so the pair is unique within a namespace
-- and is the page token's position; an audit_changes row's id takes the
-- revision's place (a bigserial: unique, and ordered within a time, but from
-- its own sequence, so a tie with a key write or event at the same
-- microsecond and number is possible in principle). Each table is read by one backward range
-- scan of its audit index (migrations/0012: kv_history_audit, events_audit)
-- within [since, until) and below the position, at most $8 rows each, merged
-- and cut at $8 ("scanned"); the principal and prefix filters apply to the
-- scanned rows, so one call reads at most $8 rows of each table, whatever the
-- filters match.
-- $1 namespace text, $2 since timestamptz ('-infinity': none), $3 until
-- timestamptz (exclusive; 'infinity': none), $4 position: microseconds since
-- the Unix epoch bigint and $5 revision bigint (only rows strictly older; the
-- first page passes 'infinity' through $4 = NULL), $6 principal text (NULL:
-- any), $7 key, stream or target prefix text ('': any), $8 rows to scan int, $9 most
-- matching rows to return int.
-- Returns: nothing when no row was scanned; otherwise one row per matching
-- change (kind 1 a key, 2 a stream, 3 a target; at_us the time in microseconds, as text),
-- or a single row with kind NULL when none matched, each carrying scanned_n
-- (rows scanned) and edge_us/edge_rev (the oldest scanned row's position).
WITH scanned AS MATERIALIZED (
  (SELECT 1::smallint AS kind, h.created_at, h.revision, convert_from(h.key, 'UTF8') AS name, h.op, h.version,
          h.principal, h.request_id
   FROM kv_history h
   WHERE h.namespace = $1::text AND h.created_at >= $2::timestamptz AND h.created_at < $3::timestamptz
     AND (h.created_at, h.revision) < (coalesce('epoch'::timestamptz + $4::bigint * interval '1 microsecond',
                                               'infinity'::timestamptz), coalesce($5::bigint, 9223372036854775807))
   ORDER BY h.created_at DESC, h.revision DESC LIMIT $8::int)
  UNION ALL
  (SELECT 2::smallint, e.created_at, e.position, e.stream, 4::smallint, e.stream_version, e.principal, e.request_id
   FROM events e
   WHERE e.namespace = $1::text AND e.created_at >= $2::timestamptz AND e.created_at < $3::timestamptz
     AND (e.created_at, e.position) < (coalesce('epoch'::timestamptz + $4::bigint * interval '1 microsecond',
                                               'infinity'::timestamptz), coalesce($5::bigint, 9223372036854775807))
   ORDER BY e.created_at DESC, e.position DESC LIMIT $8::int)
  UNION ALL
  (SELECT 3::smallint, a.created_at, a.id, a.target, a.op, 0::bigint, a.principal, a.request_id
   FROM audit_changes a
   WHERE a.namespace = $1::text AND a.created_at >= $2::timestamptz AND a.created_at < $3::timestamptz
     AND (a.created_at, a.id) < (coalesce('epoch'::timestamptz + $4::bigint * interval '1 microsecond',
                                           'infinity'::timestamptz), coalesce($5::bigint, 9223372036854775807))
   ORDER BY a.created_at DESC, a.id DESC LIMIT $8::int)
  ORDER BY created_at DESC, revision DESC LIMIT $8::int
),
edge AS (
  SELECT (SELECT count(*) FROM scanned)::int AS scanned_n,
         ((extract(epoch FROM o.created_at) * 1000000)::bigint)::text AS edge_us, o.revision AS edge_rev
  FROM (SELECT created_at, revision FROM scanned ORDER BY created_at, revision LIMIT 1) o
)
SELECT edge.scanned_n, edge.edge_us, edge.edge_rev, m.kind, m.at_us, m.created_at, m.revision, m.name, m.op,
       m.version, m.principal, m.request_id
FROM edge LEFT JOIN LATERAL (
  SELECT s.kind, ((extract(epoch FROM s.created_at) * 1000000)::bigint)::text AS at_us, s.created_at, s.revision,
         s.name, s.op, s.version, s.principal, s.request_id
  FROM scanned s
  WHERE ($6::text IS NULL OR s.principal = $6::text) AND starts_with(s.name, $7::text)
  ORDER BY s.created_at DESC, s.revision DESC LIMIT $9::int
) m ON true
ORDER BY m.created_at DESC, m.revision DESC
