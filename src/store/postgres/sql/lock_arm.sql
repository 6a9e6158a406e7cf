-- lock_arm: starts a just-acquired Postgres lock's TTL after its fencing token
-- was issued (issuing can wait on fenced writes of the previous holder), so
-- the holder is never told about a lock that has already run out.
-- $1 namespace text, $2 name text, $3 lock secret text, $4 ttl_ms bigint
-- Returns `expires_at`.
UPDATE locks SET expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond'
WHERE namespace = $1 AND name = $2 AND lock_id = $3
RETURNING expires_at
