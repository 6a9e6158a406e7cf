-- store_put: creates or replaces one store item (last writer wins). An item
-- that had expired but was not swept yet is replaced as a new one (its
-- created_at restarts).
-- $1 namespace text, $2 path text (labels joined by "."), $3 key text,
-- $4 value jsonb (as text), $5 ttl_ms bigint (NULL: no expiry), $6 principal
-- text, $7 request id text (the audit trail: an audit_changes row, op 11,
-- target "path/key", in the same statement).
-- Returns the item as stored.
WITH item AS (
INSERT INTO store_items AS s (namespace, path, key, value, created_at, updated_at, ttl_ms, expires_at)
VALUES ($1::text, $2::text, $3::text, $4::jsonb, now(), now(), $5::bigint,
        now() + $5::bigint * interval '1 millisecond')
ON CONFLICT (namespace, path, key) DO UPDATE SET
  value = excluded.value,
  updated_at = excluded.updated_at,
  ttl_ms = excluded.ttl_ms,
  expires_at = excluded.expires_at,
  created_at = CASE WHEN s.expires_at <= now() THEN excluded.created_at ELSE s.created_at END
RETURNING path, key, value::text AS value_json, created_at, updated_at, expires_at
), audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT $1::text, 11, $2::text || '/' || $3::text, $6::text, $7::text FROM item
)
SELECT * FROM item
