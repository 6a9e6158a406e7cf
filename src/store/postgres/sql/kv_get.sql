-- kv_get: one key and the store revision, read in one snapshot.
-- $1 namespace text, $2 key bytea
-- Returns zero or one row: the key's columns (NULL when absent) and `store_revision`.
SELECT k.key, k.value, k.content_type, k.version, k.create_revision, k.mod_revision,
       k.created_at, k.updated_at, k.expires_at, now() AS db_now, s.revision AS store_revision
FROM agentstate_state s
LEFT JOIN kv k ON k.namespace = $1 AND k.key = $2 AND k.version > 0
WHERE s.id = 1
