-- checkpoint_prune: keeps the latest $3 checkpoints of each checkpoint ns of the
-- threads $2 (text[]) of namespace $1 and removes the rest (agentstate_checkpoint_remove:
-- their pending writes and unreferenced channel values too; $3 = 0 removes all).
-- Returns `removed`: the checkpoints removed.
SELECT coalesce(sum(agentstate_checkpoint_remove(h.namespace, h.thread_id, h.checkpoint_ns, $3::int, NULL, NULL)), 0)::bigint
  AS removed
FROM checkpoint_heads h
WHERE h.namespace = $1::text AND h.thread_id = ANY ($2::text[])
