-- history_trim: deletes up to $2 history rows older than $1 seconds.
-- $1 retention seconds bigint, $2 batch size int
WITH old AS (
  SELECT namespace, revision FROM kv_history WHERE created_at < now() - $1::bigint * interval '1 second'
  ORDER BY created_at LIMIT $2
)
DELETE FROM kv_history h USING old WHERE h.namespace = old.namespace AND h.revision = old.revision
