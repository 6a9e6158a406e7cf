-- kv_list: one page of live keys in byte order, and the namespace's revision, in one snapshot.
-- $1 namespace text, $2 lower bound bytea (inclusive when $3 is false),
-- $3 exclusive boolean, $4 upper bound bytea (exclusive; NULL: none),
-- $5 limit int (fetch one more than the page to know whether more follow),
-- $6 include_values boolean
SELECT k.key, CASE WHEN $6 THEN k.value ELSE ''::bytea END AS value, k.content_type, k.version,
       k.create_revision, k.mod_revision, k.created_at, k.updated_at, k.expires_at,
       coalesce((SELECT revision FROM namespace_revisions WHERE namespace = $1), 0) AS store_revision
FROM kv k
WHERE k.namespace = $1
  AND k.version > 0
  AND (k.expires_at IS NULL OR k.expires_at > now())
  AND (CASE WHEN $3 THEN k.key > $2 ELSE k.key >= $2 END)
  AND ($4::bytea IS NULL OR k.key < $4)
ORDER BY k.key
LIMIT $5
