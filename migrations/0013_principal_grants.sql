-- 0013_principal_grants: grants held in Postgres for named principals (issue
-- 16), so an admin gives or takes roles at run time (AdminService GrantRoles,
-- RevokeGrant, ListGrants) without editing a file or restarting. They apply to
-- principals proven by a client certificate (the name the certificate file
-- maps it to) or a JWT (its `sub`), on top of the grants the credential itself
-- carries; never to API tokens, whose grants are fixed at creation (an admin
-- of one namespace may name a token's principal freely, so a name alone must
-- not bring a token more). A change NOTIFYs `agentstate_auth` with
-- 'principal:' || name, so every replica forgets its cached grants at once.
-- One row per (principal, namespace pattern, key prefix), like one Grant.
-- Not per namespace: on a distributed Postgres a reference table, like auth_tokens.
CREATE TABLE principal_grants (
  principal text NOT NULL,
  namespace text NOT NULL,
  prefix text NOT NULL DEFAULT '',
  roles text[] NOT NULL CHECK (cardinality(roles) > 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (principal, namespace, prefix)
);
