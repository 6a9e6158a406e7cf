-- cache_fence_change: for a change committed without any cache seeing it (an
-- append by a replica without a cache, or whose cache does not own the
-- epoch): moves the cache epoch if it has an owner (the UPDATE waits for an
-- owner change in progress and re-checks), and says how long the change must
-- wait before it is acknowledged: until the owner's leases on the replaced
-- epoch have ended (its renewals read the epoch after this commit) and a
-- replaced owner's quiet time has passed (migrations/0007).
-- No parameters. Returns one row: wait_ms bigint (0: none).
WITH bumped AS (
  UPDATE agentstate_state s SET cache_epoch = s.cache_epoch + 1, cache_epoch_at = clock_timestamp()
  WHERE s.id = 1 AND s.cache_owner IS NOT NULL
  RETURNING s.cache_owner, s.cache_quiet_until
), until AS (
  SELECT greatest(
    (SELECT b.cache_quiet_until FROM bumped b),
    (SELECT s.cache_quiet_until FROM agentstate_state s WHERE s.id = 1),
    (SELECT g.lease_until FROM bumped b JOIN cache_registrations g ON g.identity = b.cache_owner)
  ) AS t
)
SELECT CASE WHEN t IS NULL OR t <= clock_timestamp() THEN 0
            ELSE ceil(extract(epoch FROM (t - clock_timestamp())) * 1000)::bigint END AS wait_ms
FROM until
