-- checkpoint_retention_targets: (namespace, thread_id, checkpoint_ns) with
-- checkpoints the retention policy removes, for the Janitor, at most $3.
-- $1 keep_latest (0: no count rule): more checkpoints than that (heads' count,
-- index checkpoint_heads_count); $2 max age in seconds (0: no age rule): a
-- checkpoint other than the head stored before now() - $2 (index checkpoints_created).
SELECT namespace, thread_id, checkpoint_ns FROM checkpoint_heads
WHERE $1::int > 0 AND checkpoints > $1::int
UNION
SELECT c.namespace, c.thread_id, c.checkpoint_ns
FROM checkpoints c
JOIN checkpoint_heads h ON h.namespace = c.namespace AND h.thread_id = c.thread_id AND h.checkpoint_ns = c.checkpoint_ns
WHERE $2::int > 0 AND c.created_at < now() - make_interval(secs => $2::int) AND c.checkpoint_id <> h.checkpoint_id
LIMIT $3::int
