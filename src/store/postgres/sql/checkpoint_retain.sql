-- checkpoint_retain: applies the retention policy to one (thread, checkpoint ns)
-- (agentstate_checkpoint_remove, which locks its head row for the statement).
-- $1 namespace, $2 thread_id, $3 checkpoint_ns, $4 keep_latest (0: no count
-- rule), $5 max age in seconds (0: no age rule). Returns `removed`.
SELECT agentstate_checkpoint_remove($1::text, $2::text, $3::text, nullif($4::int, 0),
  CASE WHEN $5::int > 0 THEN now() - make_interval(secs => $5::int) END, NULL) AS removed
