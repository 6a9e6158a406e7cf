-- cache_lease: renews a replica's cache registration and reads the cache
-- epoch with its owner: see src/store/postgres/functions/agentstate_cache_lease.sql.
-- Parameters by name (sql.ts byName): p_identity text (NULL: read only),
-- p_previous text, p_description text, p_lease_ms bigint, p_may_own boolean,
-- p_ns_epochs boolean, p_ns_epoch bigint, p_ns_after bigint, p_ns_limit int.
-- Returns one row: epoch, age_ms, owner, quiet_ms, others, ns_moved,
-- ns_move_seq, ns_age_ms, ns_more.
SELECT * FROM agentstate_cache_lease(p_identity => $1::text, p_previous => $2::text,
  p_description => $3::text, p_lease_ms => $4::bigint, p_may_own => $5::boolean,
  p_ns_epochs => $6::boolean, p_ns_epoch => $7::bigint, p_ns_after => $8::bigint, p_ns_limit => $9::int)
