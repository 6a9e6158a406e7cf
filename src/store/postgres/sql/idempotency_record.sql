-- idempotency_record: stores the outcome of the claiming transaction.
-- $1 namespace text, $2 idempotency_key text, $3 outcome jsonb
UPDATE idempotency_keys SET outcome = $3 WHERE namespace = $1 AND idempotency_key = $2
