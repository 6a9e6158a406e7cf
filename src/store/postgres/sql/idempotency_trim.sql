-- idempotency_trim: forgets up to $2 idempotency records older than $1 seconds.
-- $1 ttl seconds bigint, $2 batch size int
WITH old AS (
  SELECT namespace, idempotency_key FROM idempotency_keys
  WHERE created_at < now() - $1::bigint * interval '1 second' LIMIT $2
)
DELETE FROM idempotency_keys i USING old
WHERE i.namespace = old.namespace AND i.idempotency_key = old.idempotency_key
