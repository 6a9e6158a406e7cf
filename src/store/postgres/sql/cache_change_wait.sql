-- cache_change_wait: how long (ms, 0 when none) a change in a namespace must
-- still wait for the leases on the epochs its namespace's latest move and the
-- store's latest store-wide move replaced (namespace_revisions.cache_move_wait_until,
-- agentstate_state.cache_quiet_until: migrations/0020), as the change's own
-- statement counts it (agentstate_event_append's wait_ms). For an append
-- whose replica saw its namespace's epoch move between sending it and noting
-- its revision: the move may have been committed after the append, so the
-- append's own wait did not count it (CacheEpoch.noteRevision).
-- $1 namespace text. Returns one row: wait_ms bigint.
SELECT greatest(0, coalesce(ceil(extract(epoch FROM (greatest(
  (SELECT nr.cache_move_wait_until FROM namespace_revisions nr WHERE nr.namespace = $1::text),
  (SELECT s.cache_quiet_until FROM agentstate_state s WHERE s.id = 1)
) - clock_timestamp())) * 1000), 0))::bigint AS wait_ms
