-- kv_put: takes the next revision and writes the key and its history row.
-- The key's row is already locked by this transaction (kv_lock_row or
-- kv_insert_placeholder); taking the revision row lock last keeps the
-- revision lock held only for the end of the transaction.
-- $1 namespace text, $2 key bytea, $3 value bytea, $4 content_type text,
-- $5 version bigint (the new version), $6 ttl_ms bigint (NULL: no expiry),
-- $7 new_incarnation boolean (true: create_revision/created_at restart)
-- Returns the written row, `store_revision` and the current `cache_epoch`.
WITH rev AS (
  UPDATE agentstate_state SET revision = revision + 1 WHERE id = 1
  RETURNING revision, now() AS ts, cache_epoch
), up AS (
  UPDATE kv SET
    value = $3, content_type = $4, version = $5,
    create_revision = CASE WHEN $7 THEN rev.revision ELSE kv.create_revision END,
    created_at = CASE WHEN $7 THEN rev.ts ELSE kv.created_at END,
    mod_revision = rev.revision, updated_at = rev.ts,
    expires_at = CASE WHEN $6::bigint IS NULL THEN NULL ELSE rev.ts + $6::bigint * interval '1 millisecond' END
  FROM rev
  WHERE kv.namespace = $1 AND kv.key = $2
  RETURNING kv.key, kv.value, kv.content_type, kv.version, kv.create_revision, kv.mod_revision,
            kv.created_at, kv.updated_at, kv.expires_at
), hist AS (
  INSERT INTO kv_history (revision, namespace, key, op, version, value, content_type, expires_at, created_at)
  SELECT rev.revision, $1, $2, 1, up.version, up.value, up.content_type, up.expires_at, rev.ts FROM rev, up
)
SELECT up.*, rev.revision AS store_revision, rev.cache_epoch FROM up, rev
