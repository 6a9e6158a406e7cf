-- lock_release: releases a Postgres-kept lock held under the secret whose
-- token is still the latest issued for the name, and announces the release on
-- channel agentstate_locks (delivered at commit) so waiters on every replica
-- try at once (PgLockReleases).
-- $1 namespace text, $2 name text, $3 lock secret text, $4 token bigint,
-- $5 announcement text (the NOTIFY payload: PgLockReleases.payload)
-- Returns `store_revision` (the namespace's revision) when released, no row when not held that way.
DELETE FROM locks WHERE namespace = $1 AND name = $2 AND lock_id = $3 AND expires_at > clock_timestamp()
  AND $4::bigint = (SELECT last_token FROM fencing_tokens WHERE namespace = $1 AND name = $2)
RETURNING coalesce((SELECT revision FROM namespace_revisions WHERE namespace = $1), 0) AS store_revision,
  pg_notify('agentstate_locks', $5) IS NULL AS announced
