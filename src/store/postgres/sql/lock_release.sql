-- lock_release: releases a Postgres-kept lock held under the secret whose
-- token is still the latest issued for the name.
-- $1 namespace text, $2 name text, $3 lock secret text, $4 token bigint
-- Returns `store_revision` when released, no row when not held that way.
DELETE FROM locks WHERE namespace = $1 AND name = $2 AND lock_id = $3 AND expires_at > clock_timestamp()
  AND $4::bigint = (SELECT last_token FROM fencing_tokens WHERE namespace = $1 AND name = $2)
RETURNING (SELECT revision FROM agentstate_state WHERE id = 1) AS store_revision
