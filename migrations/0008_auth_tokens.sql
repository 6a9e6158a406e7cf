-- 0008_auth_tokens: API tokens (guarantee 8). A token is stored only as the
-- sha256 of its text (it is 256 random bits, so a fast hash is enough, as for
-- GitHub's tokens); the text is shown once, at creation. A token carries its
-- principal's name and grants (jsonb: [{namespace, prefix, roles}]).
-- Revoking sets revoked_at and NOTIFYs `agentstate_auth` with the id, so
-- every replica drops it from its cache at once.
-- Not per namespace (a token's grants may span namespaces): on a distributed
-- Postgres it would be a reference table, like agentstate_state.
CREATE TABLE auth_tokens (
  id text PRIMARY KEY,
  token_hash bytea NOT NULL UNIQUE,
  principal text NOT NULL,
  grants jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz
);
