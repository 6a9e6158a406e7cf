-- checkpoint_put: one PutCheckpoint, run in autocommit: see
-- src/store/postgres/functions/agentstate_checkpoint_put.sql, which names and
-- explains every parameter. Parameters are passed by name (sql.ts byName).
-- p_namespace, p_thread_id, p_checkpoint_ns, p_checkpoint_id, p_parent_id text,
-- p_strict boolean, p_document_type text, p_document bytea, p_metadata jsonb,
-- p_channel_versions jsonb; one element per chunk of a channel value:
-- p_blob_channel text[], p_blob_version text[], p_blob_chunk int[],
-- p_blob_type text[], p_blob_size int[]; their bytes concatenated: p_blob_data bytea;
-- deltas (migrations/0017): p_blob_base text[], p_blob_base_crc, p_blob_depth,
-- p_blob_crc, p_blob_bytes int[].
-- The audit trail (not function parameters: the statement writes the row):
-- p_principal, p_request_id text; a stored put (created or replaced) writes an
-- audit_changes row (op 5, target "thread/checkpoint_ns/checkpoint_id") in
-- the same statement.
-- Returns one row: status, created, head.
WITH who AS (SELECT $22::text AS p_principal, $23::text AS p_request_id),
put AS (SELECT * FROM agentstate_checkpoint_put(p_namespace => $1::text, p_thread_id => $2::text,
  p_checkpoint_ns => $3::text, p_checkpoint_id => $4::text, p_parent_id => $5::text, p_strict => $6::boolean,
  p_document_type => $7::text, p_document => $8::bytea, p_metadata => $9::jsonb, p_channel_versions => $10::jsonb,
  p_blob_channel => $11::text[], p_blob_version => $12::text[], p_blob_chunk => $13::int[],
  p_blob_type => $14::text[], p_blob_size => $15::int[], p_blob_data => $16::bytea, p_blob_base => $17::text[],
  p_blob_base_crc => $18::int[], p_blob_depth => $19::int[], p_blob_crc => $20::int[], p_blob_bytes => $21::int[])),
audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT $1::text, 5, $2::text || '/' || $3::text || '/' || $4::text, who.p_principal, who.p_request_id
  FROM put, who WHERE put.status = 1
)
SELECT put.status, put.created, put.head FROM put
