-- cache_move: moves one namespace's cache epoch (the store epoch while a
-- replica of release 5 or older may hold a lease): see
-- src/store/postgres/functions/agentstate_cache_move.sql.
-- Parameters by name (sql.ts byName): p_ns text, p_if_owned boolean (true:
-- only while a cache owns the epoch).
-- Returns one row: epoch, ns_epoch, prev_age_ms, wait_ms.
SELECT * FROM agentstate_cache_move(p_ns => $1::text, p_if_owned => $2::boolean)
