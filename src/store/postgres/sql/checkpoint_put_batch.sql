-- checkpoint_put_batch: a batch of PutCheckpoints, run in autocommit (group
-- commit): see src/store/postgres/functions/agentstate_checkpoint_put_batch.sql,
-- which names and explains every parameter. Parameters are passed by name (sql.ts byName).
-- One element per put: p_namespace, p_thread_id, p_checkpoint_ns,
-- p_checkpoint_id, p_parent_id text[], p_strict boolean[], p_document_type
-- text[], p_document_size int[], p_metadata, p_channel_versions text[] (JSON),
-- p_blob_count int[]; the documents' bytes: p_document bytea; one element per
-- chunk of a channel value: p_blob_channel, p_blob_version text[], p_blob_chunk
-- int[], p_blob_type text[], p_blob_size int[]; their bytes: p_blob_data bytea;
-- deltas (migrations/0017): p_blob_base text[], p_blob_base_crc, p_blob_depth,
-- p_blob_crc, p_blob_bytes int[]; p_wait boolean. The audit trail (not function parameters: the statement
-- writes the rows), one element per put: p_principal, p_request_id text[]; each
-- stored put (created or replaced) writes an audit_changes row (op 5, target
-- "thread/checkpoint_ns/checkpoint_id") in the same statement.
-- Returns one row per put: idx, status, created, head.
WITH who AS (SELECT $25::text[] AS p_principal, $26::text[] AS p_request_id),
put AS (SELECT * FROM agentstate_checkpoint_put_batch(p_namespace => $1::text[], p_thread_id => $2::text[],
  p_checkpoint_ns => $3::text[], p_checkpoint_id => $4::text[], p_parent_id => $5::text[], p_strict => $6::boolean[],
  p_document_type => $7::text[], p_document_size => $8::int[], p_document => $9::bytea, p_metadata => $10::text[],
  p_channel_versions => $11::text[], p_blob_count => $12::int[], p_blob_channel => $13::text[],
  p_blob_version => $14::text[], p_blob_chunk => $15::int[], p_blob_type => $16::text[], p_blob_size => $17::int[],
  p_blob_data => $18::bytea, p_blob_base => $19::text[], p_blob_base_crc => $20::int[], p_blob_depth => $21::int[],
  p_blob_crc => $22::int[], p_blob_bytes => $23::int[], p_wait => $24::boolean)),
audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT ($1::text[])[put.idx], 5,
         ($2::text[])[put.idx] || '/' || ($3::text[])[put.idx] || '/' || ($4::text[])[put.idx],
         who.p_principal[put.idx], who.p_request_id[put.idx]
  FROM put, who WHERE put.status = 1
)
SELECT put.idx, put.status, put.created, put.head FROM put ORDER BY put.idx
