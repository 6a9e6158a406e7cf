-- checkpoint_get_by_id: GetCheckpoint of one id: checkpoint $4 of (namespace
-- $1, thread_id $2, checkpoint_ns $3), with the channel values it references
-- and its pending writes, read in one snapshot. Prepared (named, planned once
-- per connection: a probe of checkpoints_pkey by its whole key);
-- checkpoint_list.sql, which serves every other read, is planned per call.
-- Returns checkpoint_list.sql's rows (one 'c' row, rank 1, or none).
WITH RECURSIVE page AS (
  SELECT c.*, 1::bigint AS rank FROM checkpoints c
  WHERE c.namespace = $1::text AND c.thread_id = $2::text AND c.checkpoint_ns = $3::text
    AND c.checkpoint_id = $4::text
),
-- continued in: checkpoint_rows
