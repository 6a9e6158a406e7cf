-- grant_add: adds roles $4 to principal $1's grant on namespace pattern $2 and
-- key prefix $3, making the grant if it is new, unless the principal already
-- holds $5 grants (then no row); at commit, every replica is told on
-- `agentstate_auth` ('principal:' || $1) to forget the principal's cached grants.
-- $1 principal text, $2 namespace text, $3 prefix text, $4 roles text[], $5 max_grants int
-- Returns the grant as it now is (principal, namespace, prefix, roles, updated_at), or no row at the limit.
INSERT INTO principal_grants AS g (principal, namespace, prefix, roles)
SELECT $1, $2, $3, $4::text[]
WHERE (SELECT count(*) FROM principal_grants WHERE principal = $1) < $5
   OR EXISTS (SELECT 1 FROM principal_grants WHERE principal = $1 AND namespace = $2 AND prefix = $3)
ON CONFLICT (principal, namespace, prefix) DO UPDATE
  SET roles = ARRAY(
        SELECT r FROM unnest(g.roles || excluded.roles) AS r GROUP BY r
        ORDER BY array_position(ARRAY['read', 'write', 'lock', 'admin'], r)
      ),
      updated_at = now()
RETURNING principal, namespace, prefix, roles, updated_at, pg_notify('agentstate_auth', 'principal:' || principal)
