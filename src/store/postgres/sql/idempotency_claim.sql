-- idempotency_claim: claims an idempotency key for this transaction. A
-- concurrent claim of the same key waits here until the first commits (then
-- gets no row) or rolls back (then claims it).
-- $1 namespace text, $2 idempotency_key text, $3 fingerprint bytea
-- Returns one row when claimed, none when the key was already used.
INSERT INTO idempotency_keys (namespace, idempotency_key, fingerprint, outcome)
VALUES ($1, $2, $3, '{}'::jsonb)
ON CONFLICT (namespace, idempotency_key) DO NOTHING
RETURNING 1 AS claimed
