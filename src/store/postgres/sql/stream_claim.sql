-- stream_claim: claims a new stream with a version-0 row so the append holds a
-- row lock before taking the revision lock (same lock order as key writes).
-- Removed again (stream_unclaim) if the append does not apply.
-- $1 namespace text, $2 stream text
-- Returns one row when claimed, none when a concurrent append created the stream first.
INSERT INTO streams (namespace, stream, version) VALUES ($1, $2, 0)
ON CONFLICT (namespace, stream) DO NOTHING
RETURNING 1 AS claimed
