-- token_list: tokens in id order after $1, at most $2 (never the hash).
-- $1 after_id text ('' : from the start), $2 limit int
-- Returns rows: id, principal, grants, created_at, expires_at, revoked_at.
SELECT id, principal, grants, created_at, expires_at, revoked_at
FROM auth_tokens WHERE id > $1 ORDER BY id LIMIT $2
