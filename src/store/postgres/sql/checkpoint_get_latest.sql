-- checkpoint_get_latest: GetCheckpoint without an id: the latest checkpoint
-- (greatest id) of (namespace $1, thread_id $2, checkpoint_ns $3), with the
-- channel values it references and its pending writes, read in one snapshot.
-- Prepared (named, planned once per connection: every condition is an
-- equality, so the generic plan is a backward probe of checkpoints_pkey);
-- checkpoint_list.sql, which serves every other read, is planned per call.
-- Returns checkpoint_list.sql's rows (one 'c' row, rank 1, or none).
WITH RECURSIVE page AS (
  SELECT c.*, 1::bigint AS rank FROM checkpoints c
  WHERE c.namespace = $1::text AND c.thread_id = $2::text AND c.checkpoint_ns = $3::text
  ORDER BY c.checkpoint_id DESC
  LIMIT 1
),
-- continued in: checkpoint_rows
