-- checkpoint_prune: keeps the latest $3 checkpoints of each checkpoint ns of the
-- threads $2 (text[]) of namespace $1 and removes the rest (agentstate_checkpoint_remove:
-- their pending writes and unreferenced channel values too; $3 = 0 removes all).
-- $4 principal text, $5 request id text (the audit trail: one audit_changes
-- row, op 9, per thread that lost a checkpoint).
-- Returns `removed`: the checkpoints removed.
WITH r AS (
  SELECT h.thread_id,
         agentstate_checkpoint_remove(h.namespace, h.thread_id, h.checkpoint_ns, $3::int, NULL, NULL)::bigint AS n
  FROM checkpoint_heads h
  WHERE h.namespace = $1::text AND h.thread_id = ANY ($2::text[])
), audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT $1::text, 9, r.thread_id, $4::text, $5::text FROM r GROUP BY r.thread_id HAVING sum(r.n) > 0
)
SELECT coalesce(sum(r.n), 0)::bigint AS removed FROM r
