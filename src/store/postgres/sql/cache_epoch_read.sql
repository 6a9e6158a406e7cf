-- cache_epoch_read: the current cache epoch and its age in milliseconds by
-- the database clock. The epoch is store-wide (it is not an order of changes);
-- revisions are per namespace and seeded into the cache lazily (CacheEpoch.ts).
-- No parameters.
SELECT cache_epoch, (extract(epoch FROM (clock_timestamp() - cache_epoch_at)) * 1000)::bigint AS age_ms
FROM agentstate_state WHERE id = 1
