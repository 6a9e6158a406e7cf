-- lock_renew: extends a Postgres-kept lock held under the secret whose token
-- is still the latest issued for the name.
-- $1 namespace text, $2 name text, $3 lock secret text, $4 ttl_ms bigint, $5 token bigint
-- Returns `expires_at` and `store_revision` (the namespace's revision) when renewed; no row when not held that way.
UPDATE locks SET expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond'
WHERE namespace = $1 AND name = $2 AND lock_id = $3 AND expires_at > clock_timestamp()
  AND $5::bigint = (SELECT last_token FROM fencing_tokens WHERE namespace = $1 AND name = $2)
RETURNING expires_at, coalesce((SELECT revision FROM namespace_revisions WHERE namespace = $1), 0) AS store_revision
