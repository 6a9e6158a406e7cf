-- kv_get: one key and its namespace's revision, read in one snapshot.
-- $1 namespace text, $2 key bytea
-- Returns one row: the key's columns (NULL when absent) and `store_revision`
-- (the namespace's revision; 0 before its first change).
SELECT k.key, k.value, k.content_type, k.version, k.create_revision, k.mod_revision,
       k.created_at, k.updated_at, k.expires_at, now() AS db_now, coalesce(r.revision, 0) AS store_revision
FROM (SELECT $1::text AS namespace) q
LEFT JOIN namespace_revisions r ON r.namespace = q.namespace
LEFT JOIN kv k ON k.namespace = q.namespace AND k.key = $2 AND k.version > 0
