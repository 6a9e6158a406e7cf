-- audit_changes_trim: deletes the $2 oldest audit_changes rows (migrations/0015)
-- older than $1 seconds, over every namespace, for the Janitor (plus any
-- others sharing the last one's created_at: rows of the same microsecond).
-- The trail of checkpoint and store changes is kept as long as the trail of
-- key writes (kv_history, history_trim): both take
-- AGENTSTATE_HISTORY_RETENTION_SECONDS. Both the boundary (the $2-th oldest
-- row's time) and the delete are range scans of the audit_changes_created_at
-- index (migrations/0016), whatever the table's size: no join back to the rows.
-- $1 retention seconds bigint, $2 batch size int
DELETE FROM audit_changes
WHERE created_at < now() - $1::bigint * interval '1 second'
  AND created_at <= coalesce(
    (SELECT created_at FROM audit_changes
     WHERE created_at < now() - $1::bigint * interval '1 second'
     ORDER BY created_at OFFSET $2::int - 1 LIMIT 1),
    'infinity'::timestamptz)
