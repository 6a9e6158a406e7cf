-- store_delete: removes one store item (live or expired but not yet swept).
-- $1 namespace text, $2 path text (labels joined by "."), $3 key text
-- Returns one row per removed item: `live`, whether it had not expired.
DELETE FROM store_items
WHERE namespace = $1::text AND path = $2::text AND key = $3::text
RETURNING (expires_at IS NULL OR expires_at > now()) AS live
