-- kv_write: a batch of KV writes (CompareAndSet / Delete) in one statement,
-- run in autocommit: see src/store/postgres/functions/agentstate_kv_write.sql.
-- $1 namespaces text[], $2 keys bytea[], $3 ops smallint[] (1 put, 2 delete),
-- $4 values bytea[], $5 content types text[], $6 ttl_ms bigint[],
-- $7 condition kinds smallint[] (0 any, 1 absent, 2 version), $8 expected versions bigint[],
-- $9 fence lock names text[], $10 fence tokens bigint[], $11 idempotency keys text[],
-- $12 request fingerprints bytea[], $13 deadlines ms after the statement starts bigint[],
-- $14 marked cache epochs bigint[], $15 bump the cache epoch boolean[], $16 wait for held keys boolean
-- Returns one row per write (`idx` is its 1-based position) with its status and outcome.
SELECT * FROM agentstate_kv_write($1::text[], $2::bytea[], $3::smallint[], $4::bytea[], $5::text[], $6::bigint[],
  $7::smallint[], $8::bigint[], $9::text[], $10::bigint[], $11::text[], $12::bytea[], $13::bigint[],
  $14::bigint[], $15::boolean[], $16::boolean)
