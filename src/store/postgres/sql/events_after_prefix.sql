-- events_after_prefix: up to $4 events of streams starting with $2, position > $3, in position order.
-- $1 namespace text, $2 stream prefix text ('' = all), $3 after position bigint, $4 limit int
SELECT position, stream, stream_version, event_id::text AS event_id, type, data, metadata, created_at
FROM events WHERE namespace = $1 AND position > $3 AND starts_with(stream, $2)
ORDER BY position LIMIT $4
