-- kv_lock_row: the key's row, locked for the rest of the write transaction.
-- $1 namespace text, $2 key bytea
SELECT key, value, content_type, version, create_revision, mod_revision,
       created_at, updated_at, expires_at, now() AS db_now
FROM kv WHERE namespace = $1 AND key = $2
FOR UPDATE
