-- fencing_last: the last fencing token issued for a lock name, and the store revision.
-- $1 namespace text, $2 lock name text
SELECT (SELECT last_token FROM fencing_tokens WHERE namespace = $1 AND name = $2) AS last_token,
       revision AS store_revision
FROM agentstate_state WHERE id = 1
