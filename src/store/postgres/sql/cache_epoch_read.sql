-- cache_epoch_read: the current cache epoch and its age in milliseconds, by the database clock.
-- No parameters.
SELECT cache_epoch, (extract(epoch FROM (clock_timestamp() - cache_epoch_at)) * 1000)::bigint AS age_ms
FROM agentstate_state WHERE id = 1
