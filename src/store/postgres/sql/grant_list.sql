-- grant_list: grants in (principal, namespace, prefix) order after the triple
-- ($2, $3, $4), of principal $1 only unless it is empty, at most $5.
-- $1 principal text ('' : every principal), $2 after_principal text, $3 after_namespace text,
-- $4 after_prefix text (all three '' : from the start), $5 limit int
-- Returns rows: principal, namespace, prefix, roles, updated_at.
SELECT principal, namespace, prefix, roles, updated_at FROM principal_grants
WHERE ($1 = '' OR principal = $1) AND (principal, namespace, prefix) > ($2, $3, $4)
ORDER BY principal, namespace, prefix
LIMIT $5
