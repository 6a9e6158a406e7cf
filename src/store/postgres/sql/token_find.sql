-- token_find: the token whose text hashes to $1, revoked or expired ones too
-- (the caller tells them apart, to say why it refuses).
-- $1 token_hash bytea
-- Returns zero or one row: id, principal, grants, created_at, expires_at, revoked_at.
SELECT id, principal, grants, created_at, expires_at, revoked_at FROM auth_tokens WHERE token_hash = $1
