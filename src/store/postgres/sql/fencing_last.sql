-- fencing_last: the last fencing token issued for each of a batch of lock
-- names (the Unlocks and RenewLocks that arrive together share this
-- statement), and the store revision. Names may repeat.
-- $1 namespaces text[], $2 lock names text[]
-- Returns per name its position `idx` (1-based), `last_token` (null: none
-- issued yet) and the current `store_revision`.
SELECT u.idx, f.last_token, s.revision AS store_revision
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(namespace, name, idx)
CROSS JOIN agentstate_state s
LEFT JOIN fencing_tokens f ON f.namespace = u.namespace AND f.name = u.name
WHERE s.id = 1
