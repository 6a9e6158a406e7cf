-- cache_epoch_bump: moves the cache to a new epoch, in the transaction of a
-- write that could not invalidate the cache (or after the cache lost data).
-- clock_timestamp(), not now(): now() is the transaction's start, which can
-- be long before this commit; an epoch must not look older than it is.
-- With $2 (the replaced epoch's keys are still in Redis and readable: an
-- eviction policy turned unsafe, too many namespace moves), it raises
-- cache_quiet_until to the end of the owner's leases, as every store-wide
-- move by a write does (migrations/0020): every change waits that out, since
-- a replica that has read the new epoch marks its writes there while another
-- may still serve the old one. Without it (Redis lost or replaced the epoch's
-- alive key, so no replica can read the old epoch's keys), nothing waits.
-- $1 only_if_epoch bigint (NULL: unconditional), $2 fence_leases boolean
-- Returns the new epoch and the previous epoch's age in ms (none when not bumped).
UPDATE agentstate_state s SET cache_epoch = s.cache_epoch + 1, cache_epoch_at = clock_timestamp(),
  cache_quiet_until = CASE WHEN $2::boolean THEN greatest(s.cache_quiet_until,
    (SELECT g.lease_until FROM cache_registrations g
     WHERE g.identity = s.cache_owner AND g.lease_until > clock_timestamp())) ELSE s.cache_quiet_until END
WHERE s.id = 1 AND ($1::bigint IS NULL OR s.cache_epoch = $1::bigint)
RETURNING s.cache_epoch,
  (extract(epoch FROM (clock_timestamp() - (SELECT cache_epoch_at FROM agentstate_state WHERE id = 1))) * 1000)::bigint AS prev_age_ms
