-- stream_version: the stream's current version (no row: the stream does not exist).
-- $1 namespace text, $2 stream text
SELECT version FROM streams WHERE namespace = $1 AND stream = $2 AND version > 0
