-- events_by_ids: already-appended events among the given ids (idempotent retries).
-- $1 namespace text, $2 event ids uuid[]
SELECT event_id::text AS event_id, stream, stream_version, position, fingerprint
FROM events WHERE namespace = $1 AND event_id = ANY($2::uuid[])
ORDER BY position
