-- grant_find: the grants held in Postgres for principal $1 (at most $2).
-- $1 principal text, $2 limit int
-- Returns rows: namespace, prefix, roles.
SELECT namespace, prefix, roles FROM principal_grants WHERE principal = $1 ORDER BY namespace, prefix LIMIT $2
