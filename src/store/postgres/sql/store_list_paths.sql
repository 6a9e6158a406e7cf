-- store_list_paths: one page of the distinct paths holding live items whose
-- labels start with $2 and end with $3 (a label '*' there matches any one
-- label), each truncated to $4 labels when $4 > 0, in label order.
-- $1 namespace text, $2 prefix text[], $3 suffix text[], $4 max depth int
-- (0: none), $5 limit int, $6 offset int
-- Returns `labels` text[] per path.
SELECT DISTINCT CASE WHEN $4::int > 0 AND cardinality(l.labels) > $4::int THEN l.labels[1:$4::int] ELSE l.labels END AS labels
FROM (
  SELECT DISTINCT path FROM store_items
  WHERE namespace = $1::text AND (expires_at IS NULL OR expires_at > now())
) p
CROSS JOIN LATERAL (SELECT string_to_array(p.path, '.') AS labels) l
WHERE cardinality(l.labels) >= cardinality($2::text[])
  AND cardinality(l.labels) >= cardinality($3::text[])
  AND NOT EXISTS (
    SELECT 1 FROM unnest($2::text[]) WITH ORDINALITY AS f(label, i)
    WHERE f.label <> '*' AND f.label <> l.labels[f.i]
  )
  AND NOT EXISTS (
    SELECT 1 FROM unnest($3::text[]) WITH ORDINALITY AS f(label, i)
    WHERE f.label <> '*' AND f.label <> l.labels[cardinality(l.labels) - cardinality($3::text[]) + f.i]
  )
ORDER BY labels
LIMIT $5::int OFFSET $6::int
