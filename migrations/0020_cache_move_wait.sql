-- 0020_cache_move_wait: a change made in a namespace epoch younger than the
-- leases on the one it replaced waits those leases out (issue 15, guarantee 3).
-- After a move from epoch E to E', a replica that read E before the move still
-- serves E's keys until its lease ends (counted in the owner's lease_until),
-- while a replica that has read E' marks and installs its writes there: the
-- truth saw them marked in the current epoch and asked for no wait, so one
-- could be acknowledged while the other replica still served the older value
-- from E. Each move now records until when leases on the replaced epoch can
-- last (the owner's lease_until, read under the epoch row's exclusive lock),
-- and every change of the namespace is acknowledged only after that time
-- (agentstate_kv_write's wait_ms, agentstate_cache_move's). A store-wide
-- move records it in agentstate_state.cache_quiet_until, which every write
-- already waits out (agentstate_kv_write, agentstate_cache_lease).
-- The end of the leases on the epochs this namespace's last moves replaced (NULL: none).
ALTER TABLE namespace_revisions ADD COLUMN cache_move_wait_until timestamptz;

-- An append noted in the namespace's new epoch waits them out as well: the
-- append function returns how long (ms; NULL: no wait), as the write
-- function does (agentstate_kv_write_result.wait_ms, migrations/0007).
ALTER TYPE agentstate_event_append_result ADD ATTRIBUTE wait_ms bigint;
