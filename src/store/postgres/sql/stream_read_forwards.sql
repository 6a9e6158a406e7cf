-- stream_read_forwards: up to $4 events of one stream from version $3 upwards.
-- $1 namespace text, $2 stream text, $3 from version bigint, $4 limit int, $5 byte budget int
-- A page also stops once its data passes $5 bytes (always at least one
-- event), so a page of large events never sits whole in the server's memory.
SELECT position, stream, stream_version, event_id, type, data, metadata, created_at
FROM (
  SELECT position, stream, stream_version, event_id::text AS event_id, type, data, metadata, created_at,
         sum(octet_length(data) + octet_length(type)) OVER (ORDER BY stream_version ROWS UNBOUNDED PRECEDING) AS running,
         octet_length(data) + octet_length(type) AS size
  FROM events WHERE namespace = $1 AND stream = $2 AND stream_version >= $3
  ORDER BY stream_version LIMIT $4
) page
WHERE running - size < $5
ORDER BY stream_version
