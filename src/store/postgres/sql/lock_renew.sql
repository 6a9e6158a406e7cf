-- lock_renew: extends a Postgres-kept lock held under lock_id.
-- $1 namespace text, $2 name text, $3 lock secret text, $4 ttl_ms bigint
-- Returns `expires_at` and `store_revision` when renewed; none when not held.
UPDATE locks SET expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond'
WHERE namespace = $1 AND name = $2 AND lock_id = $3 AND expires_at > clock_timestamp()
RETURNING expires_at, (SELECT revision FROM agentstate_state WHERE id = 1) AS store_revision
