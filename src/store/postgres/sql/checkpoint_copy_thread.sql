-- checkpoint_copy_thread: copies a thread's checkpoints, channel values, pending
-- writes (with their chunks) and heads to another thread of the namespace; rows the target has
-- already are kept. $1 namespace, $2 source thread_id, $3 target thread_id, $4 principal
-- text, $5 request id text (the audit trail: an audit_changes row, op 8, target the
-- target thread, when a checkpoint was copied).
-- Returns `copied`: the checkpoints copied.
WITH cps AS (
  INSERT INTO checkpoints (namespace, thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, document_type,
                           document, metadata, channel_versions, created_at)
  SELECT namespace, $3::text, checkpoint_ns, checkpoint_id, parent_checkpoint_id, document_type, document, metadata,
         channel_versions, created_at
  FROM checkpoints WHERE namespace = $1::text AND thread_id = $2::text
  ON CONFLICT DO NOTHING
  RETURNING checkpoint_ns, checkpoint_id
), blobs AS (
  INSERT INTO checkpoint_blobs (namespace, thread_id, checkpoint_ns, channel, version, chunk, type, data, base, depth,
                                crc, bytes)
  SELECT namespace, $3::text, checkpoint_ns, channel, version, chunk, type, data, base, depth, crc, bytes
  FROM checkpoint_blobs WHERE namespace = $1::text AND thread_id = $2::text
  ON CONFLICT DO NOTHING
), writes AS (
  INSERT INTO checkpoint_writes (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel,
                                 type, data)
  SELECT namespace, $3::text, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, data
  FROM checkpoint_writes WHERE namespace = $1::text AND thread_id = $2::text
  ON CONFLICT DO NOTHING
  RETURNING checkpoint_ns, checkpoint_id, task_id, idx, type
), write_chunks AS (
  -- The chunks of the chunked writes copied (a write the target had is kept with its own).
  INSERT INTO checkpoint_write_chunks (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx, chunk, type,
                                       data)
  SELECT x.namespace, $3::text, x.checkpoint_ns, x.checkpoint_id, x.task_id, x.idx, x.chunk, x.type, x.data
  FROM writes w
  JOIN checkpoint_write_chunks x ON x.namespace = $1::text AND x.thread_id = $2::text
    AND x.checkpoint_ns = w.checkpoint_ns AND x.checkpoint_id = w.checkpoint_id AND x.task_id = w.task_id AND x.idx = w.idx
  WHERE w.type = ''
  ON CONFLICT DO NOTHING
), heads AS (
  INSERT INTO checkpoint_heads AS h (namespace, thread_id, checkpoint_ns, checkpoint_id, checkpoints)
  SELECT $1::text, $3::text, checkpoint_ns, max(checkpoint_id), count(*) FROM cps GROUP BY checkpoint_ns
  ON CONFLICT (namespace, thread_id, checkpoint_ns) DO UPDATE
    SET checkpoint_id = greatest(h.checkpoint_id, excluded.checkpoint_id), checkpoints = h.checkpoints + excluded.checkpoints
), audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT $1::text, 8, $3::text, $4::text, $5::text WHERE EXISTS (SELECT FROM cps)
)
SELECT count(*)::bigint AS copied FROM cps
