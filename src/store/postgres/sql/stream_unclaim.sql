-- stream_unclaim: removes this transaction's own version-0 claim.
-- $1 namespace text, $2 stream text
DELETE FROM streams WHERE namespace = $1 AND stream = $2 AND version = 0
