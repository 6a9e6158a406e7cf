-- agentstate_checkpoint_remove(p_namespace, p_thread_id, p_checkpoint_ns, p_keep_latest, p_older_than, p_ids) -> bigint
--
-- Promises: removes checkpoints of one (thread, checkpoint ns) with their
-- pending writes (and the chunks of those above the value limit) and the channel values no remaining checkpoint references
-- (directly, or as the base of a delta it references),
-- and brings the head row up to date (removed when nothing remains). Returns
-- how many checkpoints it removed. One transaction with the caller's
-- statement; the head row is locked FOR UPDATE first, so a concurrent put of
-- this thread and checkpoint ns waits (and its channel values are never
-- collected while it still references them).
--
-- A checkpoint is removed when any rule given (non-NULL) selects it:
--   p_keep_latest   it is not among the p_keep_latest greatest ids (0: all)
--   p_older_than    it was stored before this time and is not the head
--                   (age retention never empties a thread)
--   p_ids           its id is in the array
-- Used by PruneCheckpoints, DeleteThread, DeleteForRuns and the Janitor's
-- retention (src/store/postgres/sql/checkpoint_*.sql).
CREATE OR REPLACE FUNCTION agentstate_checkpoint_remove(
  p_namespace text,
  p_thread_id text,
  p_checkpoint_ns text,
  p_keep_latest int,
  p_older_than timestamptz,
  p_ids text[]
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_head text;
  v_removed bigint;
BEGIN
  SELECT h.checkpoint_id INTO v_head FROM checkpoint_heads h
  WHERE h.namespace = p_namespace AND h.thread_id = p_thread_id AND h.checkpoint_ns = p_checkpoint_ns
  FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;

  WITH ranked AS (
    SELECT c.checkpoint_id, c.created_at,
           row_number() OVER (ORDER BY c.checkpoint_id DESC) AS rank
    FROM checkpoints c
    WHERE c.namespace = p_namespace AND c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns
  ), victims AS (
    SELECT r.checkpoint_id FROM ranked r
    WHERE (p_keep_latest IS NOT NULL AND r.rank > p_keep_latest)
       OR (p_older_than IS NOT NULL AND r.created_at < p_older_than AND r.checkpoint_id <> v_head)
       OR (p_ids IS NOT NULL AND r.checkpoint_id = ANY (p_ids))
  ), gone_writes AS (
    DELETE FROM checkpoint_writes w USING victims v
    WHERE w.namespace = p_namespace AND w.thread_id = p_thread_id AND w.checkpoint_ns = p_checkpoint_ns
      AND w.checkpoint_id = v.checkpoint_id
  ), gone_write_chunks AS (
    DELETE FROM checkpoint_write_chunks x USING victims v
    WHERE x.namespace = p_namespace AND x.thread_id = p_thread_id AND x.checkpoint_ns = p_checkpoint_ns
      AND x.checkpoint_id = v.checkpoint_id
  )
  DELETE FROM checkpoints c USING victims v
  WHERE c.namespace = p_namespace AND c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns
    AND c.checkpoint_id = v.checkpoint_id;
  GET DIAGNOSTICS v_removed = ROW_COUNT;
  IF v_removed = 0 THEN
    RETURN 0;
  END IF;

  -- Channel values referenced by no remaining checkpoint of this thread and
  -- checkpoint ns, and that are no base of a value kept (a delta's chain,
  -- migrations/0017: followed from each referenced value to its whole one).
  WITH RECURSIVE kept AS (
    SELECT r.key AS channel, r.value AS version
    FROM checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.channel_versions) AS r
    WHERE c.namespace = p_namespace AND c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns
    UNION
    SELECT k.channel, b.base
    FROM kept k
    JOIN checkpoint_blobs b ON b.namespace = p_namespace AND b.thread_id = p_thread_id
      AND b.checkpoint_ns = p_checkpoint_ns AND b.channel = k.channel AND b.version = k.version AND b.chunk = 0
    WHERE b.base IS NOT NULL
  )
  DELETE FROM checkpoint_blobs b
  WHERE b.namespace = p_namespace AND b.thread_id = p_thread_id AND b.checkpoint_ns = p_checkpoint_ns
    AND NOT EXISTS (SELECT 1 FROM kept k WHERE k.channel = b.channel AND k.version = b.version);

  UPDATE checkpoint_heads h
  SET checkpoint_id = coalesce(s.head, ''), checkpoints = s.n
  FROM (SELECT max(c.checkpoint_id) AS head, count(*) AS n FROM checkpoints c
        WHERE c.namespace = p_namespace AND c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns) s
  WHERE h.namespace = p_namespace AND h.thread_id = p_thread_id AND h.checkpoint_ns = p_checkpoint_ns;
  DELETE FROM checkpoint_heads h
  WHERE h.namespace = p_namespace AND h.thread_id = p_thread_id AND h.checkpoint_ns = p_checkpoint_ns
    AND h.checkpoints = 0;
  RETURN v_removed;
END
$$;
