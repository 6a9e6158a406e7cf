-- events_trim_count: deletes up to $2 events that are more than $1 versions
-- behind their stream's current version (the stream row is read, not locked).
-- $1 max events per stream bigint, $2 batch size int
WITH old AS (
  SELECT e.position FROM events e JOIN streams s ON s.namespace = e.namespace AND s.stream = e.stream
  WHERE e.stream_version <= s.version - $1::bigint
  ORDER BY e.position LIMIT $2
)
DELETE FROM events e USING old WHERE e.position = old.position
