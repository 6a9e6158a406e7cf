-- fencing_issue: issues the next fencing token for each of a batch of lock
-- names (the Locks granted together share this statement and its WAL flush):
-- strictly greater than every token issued before for that name, durable.
-- Waits for writes that are checking a name's previous token (they hold its
-- row FOR SHARE). Names are distinct and sorted (rows are locked in order).
-- $1 namespaces text[], $2 lock names text[]
-- Returns per name its `token` and its namespace's current revision (`store_revision`).
INSERT INTO fencing_tokens (namespace, name, last_token)
SELECT u.namespace, u.name, 1 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(namespace, name, n)
ORDER BY u.n
ON CONFLICT (namespace, name) DO UPDATE SET last_token = fencing_tokens.last_token + 1, updated_at = now()
RETURNING namespace, name, last_token AS token, coalesce((SELECT r.revision FROM namespace_revisions r WHERE r.namespace = fencing_tokens.namespace), 0)
  AS store_revision
