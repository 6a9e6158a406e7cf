-- checkpoint_list: a page of checkpoints, newest first, with the channel values
-- they reference and their pending writes, read in one snapshot. Also serves
-- GetCheckpoint (thread and checkpoint ns given, limit 1, by id or latest).
-- Run unnamed (planned with its values: the unused conditions fold away and a
-- metadata filter uses the GIN index checkpoints_metadata); GetCheckpoint of
-- a thread's latest checkpoint or of one id runs checkpoint_get_latest.sql or
-- checkpoint_get_by_id.sql instead, prepared (this one costs ~1 ms to plan).
-- The page's rows are checkpoint_rows.sql, its continuation.
-- $1 namespace; $2 thread_id ('' = any); $3 checkpoint_ns (NULL = any);
-- $4 checkpoint_id ('' = any); $5 before: ids sorting before it ('' = no bound);
-- $6 scope filter jsonb: {"n": namespace, "t": thread?, "m": metadata filter},
-- matched by containment against the indexed scope document (migrations/0009) (NULL = none);
-- $7, $8, $9 the cursor (checkpoint_id, thread_id, checkpoint_ns) of the
-- previous page's last row ($7 NULL: first page); $10 limit.
-- Returns rows of three kinds, told by `kind`:
--   'c' a checkpoint: thread_id, checkpoint_ns, checkpoint_id, s1 parent id,
--       s2 metadata, s3 channel_versions (JSON text), type + data the document,
--       n its rank in the page (1 = newest), at its creation time
--   'b' a chunk of a channel value of (thread_id, checkpoint_ns): s1 channel,
--       s2 version, n the chunk number, type + data; s3 on chunk 0 of a delta
--       (type '', migrations/0017): its base version, whose rows are returned too,
--       and checkpoint_id the CRC-32 of the value it stands for (checked on read)
--   'w' a pending write on (thread_id, checkpoint_ns, checkpoint_id): s1 task id,
--       s2 task path, s3 channel, n its index, type + data
--       (type '' and no data: a write above the value limit, its value in 'x' rows)
--   'x' a chunk of such a write (migrations/0014): s1 task id, n its index,
--       s3 the chunk number, type + data
WITH RECURSIVE page AS (
  SELECT c.*, row_number() OVER (ORDER BY c.checkpoint_id DESC, c.thread_id DESC, c.checkpoint_ns DESC) AS rank
  FROM (
    SELECT * FROM checkpoints c
    WHERE c.namespace = $1::text
      AND ($2::text = '' OR c.thread_id = $2::text)
      AND ($3::text IS NULL OR c.checkpoint_ns = $3::text)
      AND ($4::text = '' OR c.checkpoint_id = $4::text)
      AND ($5::text = '' OR c.checkpoint_id < $5::text)
      AND ($6::jsonb IS NULL OR jsonb_set(jsonb_object(ARRAY['n', c.namespace, 't', c.thread_id]), '{m}', c.metadata) @> $6::jsonb)
      AND ($7::text IS NULL OR (c.checkpoint_id, c.thread_id, c.checkpoint_ns) < ($7::text, $8::text, $9::text))
    ORDER BY c.checkpoint_id DESC, c.thread_id DESC, c.checkpoint_ns DESC
    LIMIT $10::int
  ) c
),
-- continued in: checkpoint_rows
