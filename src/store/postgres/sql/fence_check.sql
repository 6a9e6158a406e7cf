-- fence_check: the last fencing token issued for a lock name. FOR SHARE makes
-- a concurrent issue of a newer token wait for this write to commit, so a
-- write is ordered either before the new token or rejected after it.
-- $1 namespace text, $2 lock name text
SELECT last_token FROM fencing_tokens WHERE namespace = $1 AND name = $2 FOR SHARE
