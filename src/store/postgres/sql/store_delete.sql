-- store_delete: removes one store item (live or expired but not yet swept).
-- $1 namespace text, $2 path text (labels joined by "."), $3 key text, $4
-- principal text, $5 request id text (the audit trail: an audit_changes row,
-- op 12, target "path/key", when an item was removed).
-- Returns one row per removed item: `live`, whether it had not expired.
WITH d AS (
DELETE FROM store_items
WHERE namespace = $1::text AND path = $2::text AND key = $3::text
RETURNING (expires_at IS NULL OR expires_at > now()) AS live
), audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT $1::text, 12, $2::text || '/' || $3::text, $4::text, $5::text WHERE EXISTS (SELECT FROM d)
)
SELECT * FROM d
