-- checkpoint_delete_for_runs: removes the checkpoints of namespace $1 whose
-- metadata.run_id is in $2 (text[]), found through the GIN index
-- checkpoints_metadata (one containment probe per run id), with their pending
-- writes and unreferenced channel values (agentstate_checkpoint_remove).
-- $3 principal text, $4 request id text (the audit trail: one audit_changes
-- row, op 10, per thread that lost a checkpoint).
-- Returns `removed`: the checkpoints removed.
WITH hits AS (
  SELECT c.thread_id, c.checkpoint_ns, array_agg(c.checkpoint_id) AS ids
  FROM unnest($2::text[]) AS r(run_id)
  JOIN checkpoints c
    ON jsonb_set(jsonb_object(ARRAY['n', c.namespace, 't', c.thread_id]), '{m}', c.metadata)
       @> jsonb_build_object('n', $1::text, 'm', jsonb_build_object('run_id', r.run_id))
  GROUP BY c.thread_id, c.checkpoint_ns
), r AS (
  SELECT h.thread_id, agentstate_checkpoint_remove($1::text, h.thread_id, h.checkpoint_ns, NULL, NULL, h.ids)::bigint AS n
  FROM hits h
), audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT $1::text, 10, r.thread_id, $3::text, $4::text FROM r GROUP BY r.thread_id HAVING sum(r.n) > 0
)
SELECT coalesce(sum(r.n), 0)::bigint AS removed FROM r
