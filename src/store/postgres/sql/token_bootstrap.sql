-- token_bootstrap: the bootstrap admin token (id 'bootstrap'). With a hash
-- ($1 set, from AGENTSTATE_BOOTSTRAP_TOKEN) it is made or replaced (and the
-- old text stops working on every replica: NOTIFY). With $2 set instead it is
-- made only if no token exists at all (first start; the text is printed once),
-- and never replaces one: of replicas making their first start together, only
-- the first to commit stores (and prints) a token, the others find it there.
-- Replicas starting together are arbitrated here, not by their callers: the
-- statement takes a transaction-scoped advisory lock before it inserts, so the
-- later one inserts only after the earlier committed and then meets its row on
-- the `id` conflict (ON CONFLICT arbitrates that index only; without the lock
-- the later insert could wait on the token_hash index instead and fail there
-- with a unique violation when both carry the same configured hash).
-- $1 configured_hash bytea (or null), $2 generated_hash bytea (or null), $3 grants jsonb
-- Returns one row: inserted (true when this call stored a token), updated.
WITH serialized AS (
  SELECT pg_advisory_xact_lock(hashtext('agentstate.auth_tokens.bootstrap')) AS locked
), wanted AS (
  SELECT coalesce($1::bytea, $2::bytea) AS token_hash
  WHERE $1::bytea IS NOT NULL OR NOT EXISTS (SELECT 1 FROM auth_tokens)
), upserted AS (
  INSERT INTO auth_tokens (id, token_hash, principal, grants)
  SELECT 'bootstrap', token_hash, 'bootstrap-admin', $3 FROM serialized CROSS JOIN wanted
  ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, revoked_at = NULL, grants = excluded.grants
    WHERE $1::bytea IS NOT NULL AND auth_tokens.token_hash IS DISTINCT FROM excluded.token_hash
  RETURNING (xmax = 0) AS inserted, pg_notify('agentstate_auth', id) AS notified
)
SELECT coalesce((SELECT inserted FROM upserted), false) AS inserted,
       coalesce((SELECT NOT inserted FROM upserted), false) AS updated
