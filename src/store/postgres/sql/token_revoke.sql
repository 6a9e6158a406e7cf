-- token_revoke: revokes token $1 (a revoked token stays revoked) and, at
-- commit, notifies every replica on `agentstate_auth` with its id.
-- $1 id text
-- Returns one row if the token exists: revoked_at.
WITH revoked AS (
  UPDATE auth_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id, revoked_at
)
SELECT revoked_at, pg_notify('agentstate_auth', id) FROM revoked
