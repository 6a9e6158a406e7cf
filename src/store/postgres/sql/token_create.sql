-- token_create: a new token.
-- $1 id text, $2 token_hash bytea, $3 principal text, $4 grants jsonb, $5 expires_at timestamptz (null: never)
-- Returns the row: id, principal, grants, created_at, expires_at, revoked_at.
INSERT INTO auth_tokens (id, token_hash, principal, grants, expires_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, principal, grants, created_at, expires_at, revoked_at
