-- stream_read_forwards: up to $4 events of one stream from version $3 upwards.
-- $1 namespace text, $2 stream text, $3 from version bigint, $4 limit int
SELECT position, stream, stream_version, event_id::text AS event_id, type, data, metadata, created_at
FROM events WHERE namespace = $1 AND stream = $2 AND stream_version >= $3
ORDER BY stream_version LIMIT $4
