-- fencing_issue: issues the next fencing token for a lock name: strictly
-- greater than every token issued before for it, durable. Waits for writes
-- that are checking the previous token (they hold the row FOR SHARE).
-- $1 namespace text, $2 lock name text
-- Returns `token` and the current `store_revision`.
INSERT INTO fencing_tokens (namespace, name, last_token) VALUES ($1, $2, 1)
ON CONFLICT (namespace, name) DO UPDATE SET last_token = fencing_tokens.last_token + 1, updated_at = now()
RETURNING last_token AS token, (SELECT revision FROM agentstate_state WHERE id = 1) AS store_revision
