-- checkpoint_delete_thread: every checkpoint, channel value, pending write (with
-- its chunks) and head of one thread (all its checkpoint namespaces). $1 namespace, $2 thread_id,
-- $3 principal text, $4 request id text (the audit trail: an audit_changes row,
-- op 7, when a checkpoint was removed).
-- Returns `removed`: the checkpoints removed.
WITH heads AS (
  DELETE FROM checkpoint_heads WHERE namespace = $1::text AND thread_id = $2::text
), writes AS (
  DELETE FROM checkpoint_writes WHERE namespace = $1::text AND thread_id = $2::text
), write_chunks AS (
  DELETE FROM checkpoint_write_chunks WHERE namespace = $1::text AND thread_id = $2::text
), blobs AS (
  DELETE FROM checkpoint_blobs WHERE namespace = $1::text AND thread_id = $2::text
), gone AS (
  DELETE FROM checkpoints WHERE namespace = $1::text AND thread_id = $2::text RETURNING 1
), audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT $1::text, 7, $2::text, $3::text, $4::text WHERE EXISTS (SELECT FROM gone)
)
SELECT count(*)::bigint AS removed FROM gone
