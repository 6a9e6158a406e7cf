-- cache_epoch_bump: moves the cache to a new epoch, in the transaction of a
-- write that could not invalidate the cache (or after the cache lost data).
-- clock_timestamp(), not now(): now() is the transaction's start, which can
-- be long before this commit; an epoch must not look older than it is.
-- $1 only_if_epoch bigint (NULL: unconditional)
-- Returns the new epoch and the previous epoch's age in ms (none when not bumped).
UPDATE agentstate_state SET cache_epoch = cache_epoch + 1, cache_epoch_at = clock_timestamp()
WHERE id = 1 AND ($1::bigint IS NULL OR cache_epoch = $1::bigint)
RETURNING cache_epoch,
  (extract(epoch FROM (clock_timestamp() - (SELECT cache_epoch_at FROM agentstate_state WHERE id = 1))) * 1000)::bigint AS prev_age_ms
