-- events_trim_age: deletes up to $2 events older than $1 seconds (oldest first).
-- Appends are never blocked: new rows are untouched and no stream row is locked.
-- $1 max age seconds bigint, $2 batch size int
WITH old AS (
  SELECT namespace, position FROM events WHERE created_at < now() - $1::bigint * interval '1 second'
  ORDER BY created_at LIMIT $2
)
DELETE FROM events e USING old WHERE e.namespace = old.namespace AND e.position = old.position
