-- grant_revoke: takes roles $4 (all of them when empty) from principal $1's
-- grant on namespace pattern $2 and key prefix $3; a grant left with no role
-- is removed. At commit, every replica is told on `agentstate_auth`
-- ('principal:' || $1) to forget the principal's cached grants.
-- $1 principal text, $2 namespace text, $3 prefix text, $4 roles text[]
-- Returns no row if there was no such grant; else one row: roles (the roles
-- left, null when the grant is gone), updated_at.
WITH old AS (
  SELECT roles FROM principal_grants WHERE principal = $1 AND namespace = $2 AND prefix = $3 FOR UPDATE
), kept AS (
  SELECT ARRAY(
    SELECT r FROM unnest(old.roles) AS r WHERE cardinality($4::text[]) > 0 AND r <> ALL ($4::text[])
  ) AS roles FROM old
), deleted AS (
  DELETE FROM principal_grants
  WHERE principal = $1 AND namespace = $2 AND prefix = $3 AND (SELECT cardinality(roles) FROM kept) = 0
  RETURNING 1
), updated AS (
  UPDATE principal_grants SET roles = (SELECT roles FROM kept), updated_at = now()
  WHERE principal = $1 AND namespace = $2 AND prefix = $3 AND (SELECT cardinality(roles) FROM kept) > 0
  RETURNING roles, updated_at
)
SELECT (SELECT roles FROM updated) AS roles, (SELECT updated_at FROM updated) AS updated_at,
       pg_notify('agentstate_auth', 'principal:' || $1)
FROM old
