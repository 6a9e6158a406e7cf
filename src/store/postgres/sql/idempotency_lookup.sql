-- idempotency_lookup: the first request's fingerprint and outcome.
-- $1 namespace text, $2 idempotency_key text
SELECT fingerprint, outcome FROM idempotency_keys WHERE namespace = $1 AND idempotency_key = $2
