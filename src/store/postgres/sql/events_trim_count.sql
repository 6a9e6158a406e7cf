-- events_trim_count: deletes up to $2 events that are more than $1 versions
-- behind their stream's current version (the stream row is read, not locked).
-- $1 max events per stream bigint, $2 batch size int
WITH old AS (
  SELECT e.namespace, e.position FROM events e JOIN streams s ON s.namespace = e.namespace AND s.stream = e.stream
  WHERE e.stream_version <= s.version - $1::bigint
  LIMIT $2
)
DELETE FROM events e USING old WHERE e.namespace = old.namespace AND e.position = old.position
