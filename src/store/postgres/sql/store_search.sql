-- store_search: one page of the live items under a path prefix that match a
-- filter, most recently updated first (then path, key); with $7, restarts the
-- expiry of the page's items that have a TTL (refreshing reads).
-- The prefix is a range of the primary key (paths are "C"-collated text, '/'
-- follows '.'); the filter's equalities are one containment test, served by
-- the GIN index store_items_value, and its conditions (domain/itemRules.ts)
-- narrow the rows that pass: each is {k: field, op, v: operand}.
-- $1 namespace text, $2 path prefix text ('' = every path), $3 contains jsonb,
-- $4 conditions jsonb (array), $5 limit int, $6 offset int, $7 refresh bool
-- Returns the page's items, their expiries as refreshed.
WITH page AS (
  SELECT s.namespace, s.path, s.key, s.value, s.created_at, s.updated_at, s.ttl_ms, s.expires_at
  FROM store_items s
  WHERE s.namespace = $1::text
    AND ($2::text = '' OR s.path = $2::text OR (s.path >= ($2::text || '.') AND s.path < ($2::text || '/')))
    AND (s.expires_at IS NULL OR s.expires_at > now())
    AND s.value @> $3::jsonb
    AND NOT EXISTS (
      SELECT 1 FROM jsonb_to_recordset($4::jsonb) AS c(k text, op text, v jsonb)
      WHERE NOT coalesce(CASE c.op
        WHEN 'eq' THEN s.value -> c.k = c.v
        WHEN 'ne' THEN (s.value -> c.k) IS DISTINCT FROM c.v
        WHEN 'gt' THEN jsonb_typeof(s.value -> c.k) = jsonb_typeof(c.v) AND s.value -> c.k > c.v
        WHEN 'gte' THEN jsonb_typeof(s.value -> c.k) = jsonb_typeof(c.v) AND s.value -> c.k >= c.v
        WHEN 'lt' THEN jsonb_typeof(s.value -> c.k) = jsonb_typeof(c.v) AND s.value -> c.k < c.v
        WHEN 'lte' THEN jsonb_typeof(s.value -> c.k) = jsonb_typeof(c.v) AND s.value -> c.k <= c.v
      END, false)
    )
  ORDER BY s.updated_at DESC, s.path, s.key
  LIMIT $5::int OFFSET $6::int
), touched AS (
  UPDATE store_items s SET expires_at = now() + s.ttl_ms * interval '1 millisecond'
  FROM page
  WHERE $7::bool AND page.ttl_ms IS NOT NULL
    AND s.namespace = page.namespace AND s.path = page.path AND s.key = page.key
  RETURNING s.path, s.key, s.expires_at
)
SELECT page.path, page.key, page.value::text AS value_json, page.created_at, page.updated_at,
       coalesce(touched.expires_at, page.expires_at) AS expires_at
FROM page LEFT JOIN touched ON touched.path = page.path AND touched.key = page.key
ORDER BY page.updated_at DESC, page.path, page.key
