-- store_get: one live store item; with $4, restarts its expiry from now when
-- it has a TTL (a refreshing read).
-- $1 namespace text, $2 path text (labels joined by "."), $3 key text, $4 refresh bool
-- Returns the item (no row when absent or expired), its expiry as refreshed.
WITH hit AS (
  SELECT namespace, path, key, value, created_at, updated_at, ttl_ms, expires_at FROM store_items
  WHERE namespace = $1::text AND path = $2::text AND key = $3::text
    AND (expires_at IS NULL OR expires_at > now())
), touched AS (
  UPDATE store_items s SET expires_at = now() + s.ttl_ms * interval '1 millisecond'
  FROM hit
  WHERE $4::bool AND hit.ttl_ms IS NOT NULL
    AND s.namespace = hit.namespace AND s.path = hit.path AND s.key = hit.key
  RETURNING s.expires_at
)
SELECT hit.path, hit.key, hit.value::text AS value_json, hit.created_at, hit.updated_at,
       coalesce((SELECT expires_at FROM touched), hit.expires_at) AS expires_at
FROM hit
