-- cache_epoch_read: the current cache epoch, its age in milliseconds by the
-- database clock, and the store revision (all in one snapshot).
-- No parameters.
SELECT cache_epoch, (extract(epoch FROM (clock_timestamp() - cache_epoch_at)) * 1000)::bigint AS age_ms,
       revision AS store_revision
FROM agentstate_state WHERE id = 1
