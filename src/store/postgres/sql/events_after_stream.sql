-- events_after_stream: up to $4 events of one stream with position > $3, in position order.
-- $1 namespace text, $2 stream text, $3 after position bigint, $4 limit int
SELECT position, stream, stream_version, event_id::text AS event_id, type, data, metadata, created_at
FROM events WHERE namespace = $1 AND stream = $2 AND position > $3
ORDER BY position LIMIT $4
