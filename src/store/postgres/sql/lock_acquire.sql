-- lock_acquire: takes a Postgres-kept lock if it is free or expired, and
-- issues its fencing token in the same statement.
-- $1 namespace text, $2 name text, $3 lock secret text (the lock id without its token), $4 owner text, $5 ttl_ms bigint
-- Returns one row (`token`, `expires_at`, `store_revision`: the namespace's revision) when acquired, none when held.
WITH got AS (
  INSERT INTO locks (namespace, name, lock_id, owner, expires_at)
  VALUES ($1, $2, $3, $4, clock_timestamp() + $5::bigint * interval '1 millisecond')
  ON CONFLICT (namespace, name) DO UPDATE
    SET lock_id = EXCLUDED.lock_id, owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
    WHERE locks.expires_at <= clock_timestamp()
  RETURNING expires_at
), tok AS (
  INSERT INTO fencing_tokens (namespace, name, last_token)
  SELECT $1, $2, 1 FROM got
  ON CONFLICT (namespace, name) DO UPDATE SET last_token = fencing_tokens.last_token + 1, updated_at = now()
  RETURNING last_token
)
SELECT tok.last_token AS token, got.expires_at, coalesce((SELECT revision FROM namespace_revisions WHERE namespace = $1), 0) AS store_revision
FROM got, tok
