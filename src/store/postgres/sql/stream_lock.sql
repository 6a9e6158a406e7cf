-- stream_lock: the stream's row, locked for the rest of the append transaction.
-- $1 namespace text, $2 stream text
SELECT version FROM streams WHERE namespace = $1 AND stream = $2 FOR UPDATE
