-- cache_epoch_bump: moves the cache to a new epoch, in the transaction of a
-- write that could not invalidate the cache (or after the cache lost data).
-- $1 only_if_epoch bigint (NULL: unconditional)
-- Returns the new epoch and the previous epoch's age in ms (NULL when not bumped).
UPDATE agentstate_state SET cache_epoch = cache_epoch + 1, cache_epoch_at = now()
WHERE id = 1 AND ($1::bigint IS NULL OR cache_epoch = $1::bigint)
RETURNING cache_epoch,
  (extract(epoch FROM (now() - (SELECT cache_epoch_at FROM agentstate_state WHERE id = 1))) * 1000)::bigint AS prev_age_ms
