-- fencing_last: the last fencing token issued for each of a batch of lock
-- names (the Unlocks and RenewLocks that arrive together share this
-- statement), and each name's namespace's revision. Names may repeat.
-- $1 namespaces text[], $2 lock names text[]
-- Returns per name its position `idx` (1-based), `last_token` (null: none
-- issued yet) and its namespace's current revision (`store_revision`).
SELECT u.idx, f.last_token, coalesce(r.revision, 0) AS store_revision
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(namespace, name, idx)
LEFT JOIN namespace_revisions r ON r.namespace = u.namespace
LEFT JOIN fencing_tokens f ON f.namespace = u.namespace AND f.name = u.name
