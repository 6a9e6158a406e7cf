-- checkpoint_writes_put: one PutWrites, run in autocommit: see
-- src/store/postgres/functions/agentstate_checkpoint_writes_put.sql, which
-- names and explains every parameter. Parameters are passed by name (sql.ts byName).
-- p_namespace, p_thread_id, p_checkpoint_ns, p_checkpoint_id, p_task_id,
-- p_task_path text; one element per write: p_idx int[], p_channel text[],
-- p_type text[], p_size int[]; their values concatenated: p_data bytea;
-- p_chunk_bytes int (values above it are chunked); p_max_bytes bigint (the
-- checkpoint's size limit, 0: none).
-- The audit trail (not function parameters: the statement writes the row):
-- p_principal, p_request_id text; writes stored or replaced add an audit_changes row (op 6,
-- target "thread/checkpoint_ns/checkpoint_id") in the same statement.
-- Returns one row: status, stored, bytes.
WITH who AS (SELECT $14::text AS p_principal, $15::text AS p_request_id),
w AS (SELECT * FROM agentstate_checkpoint_writes_put(p_namespace => $1::text, p_thread_id => $2::text,
  p_checkpoint_ns => $3::text, p_checkpoint_id => $4::text, p_task_id => $5::text, p_task_path => $6::text,
  p_idx => $7::int[], p_channel => $8::text[], p_type => $9::text[], p_size => $10::int[], p_data => $11::bytea,
  p_chunk_bytes => $12::int, p_max_bytes => $13::bigint)),
audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT $1::text, 6, $2::text || '/' || $3::text || '/' || $4::text, who.p_principal, who.p_request_id
  FROM w, who WHERE w.status = 1 AND w.stored > 0
)
SELECT w.status, w.stored, w.bytes FROM w
