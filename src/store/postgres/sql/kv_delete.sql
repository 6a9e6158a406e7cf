-- kv_delete: takes the next revision, removes the key and logs the delete.
-- The key's row is already locked by this transaction.
-- $1 namespace text, $2 key bytea, $3 op smallint (2 delete, 3 expire)
-- Returns the removed row, `store_revision` and the current `cache_epoch`.
WITH rev AS (
  UPDATE agentstate_state SET revision = revision + 1 WHERE id = 1
  RETURNING revision, now() AS ts, cache_epoch
), del AS (
  DELETE FROM kv WHERE namespace = $1 AND key = $2
  RETURNING key, value, content_type, version, create_revision, mod_revision, created_at, updated_at, expires_at
), hist AS (
  INSERT INTO kv_history (revision, namespace, key, op, version, created_at)
  SELECT rev.revision, $1, $2, $3, del.version, rev.ts FROM rev, del
)
SELECT del.*, rev.revision AS store_revision, rev.cache_epoch FROM del, rev
