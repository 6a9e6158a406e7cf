-- checkpoint_list: a page of checkpoints, newest first, with the channel values
-- they reference and their pending writes, read in one snapshot. Also serves
-- GetCheckpoint (thread and checkpoint ns given, limit 1, by id or latest).
-- Run unnamed (planned with its values: the unused conditions fold away and a
-- metadata filter uses the GIN index checkpoints_metadata). Every lookup of
-- values and writes is a LATERAL subquery behind OFFSET 0, so it is run per
-- row by its whole key: joined, it was planned as one hash of the namespace's
-- values (a read grew with the namespace).
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
), refs AS (
  SELECT DISTINCT p.thread_id, p.checkpoint_ns, v.channel, v.version
  FROM page p CROSS JOIN LATERAL jsonb_each_text(p.channel_versions) AS v(channel, version)
), chain AS (
  -- The values referenced and, for a delta, its base, the base's base ...
  -- down to a whole value (at most the delta chain bound deep, migrations/0017).
  SELECT * FROM refs
  UNION
  SELECT c.thread_id, c.checkpoint_ns, c.channel, b.base
  FROM chain c
  CROSS JOIN LATERAL (
    SELECT b.base FROM checkpoint_blobs b
    WHERE b.namespace = $1::text AND b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns
      AND b.channel = c.channel AND b.version = c.version AND b.chunk = 0 AND b.base IS NOT NULL
    OFFSET 0
  ) b
)
SELECT 'c' AS kind, p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id AS s1,
       p.metadata::text AS s2, p.channel_versions::text AS s3, p.rank::int AS n, p.document_type AS type,
       p.document AS data, p.created_at AS at
FROM page p
UNION ALL
SELECT 'b', b.thread_id, b.checkpoint_ns, CASE WHEN b.base IS NOT NULL THEN b.crc::text END, b.channel, b.version, b.base, b.chunk, b.type, b.data, NULL
FROM chain r
CROSS JOIN LATERAL (
  SELECT * FROM checkpoint_blobs b
  WHERE b.namespace = $1::text AND b.thread_id = r.thread_id AND b.checkpoint_ns = r.checkpoint_ns
    AND b.channel = r.channel AND b.version = r.version
  OFFSET 0
) b
UNION ALL
SELECT 'w', w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.task_path, w.channel, w.idx, w.type, w.data,
       NULL
FROM page p
CROSS JOIN LATERAL (
  SELECT * FROM checkpoint_writes w
  WHERE w.namespace = $1::text AND w.thread_id = p.thread_id AND w.checkpoint_ns = p.checkpoint_ns
    AND w.checkpoint_id = p.checkpoint_id
  OFFSET 0
) w
UNION ALL
SELECT 'x', x.thread_id, x.checkpoint_ns, x.checkpoint_id, x.task_id, NULL, x.chunk::text, x.idx, x.type, x.data, NULL
FROM page p
CROSS JOIN LATERAL (
  SELECT w.task_id, w.idx FROM checkpoint_writes w
  WHERE w.namespace = $1::text AND w.thread_id = p.thread_id AND w.checkpoint_ns = p.checkpoint_ns
    AND w.checkpoint_id = p.checkpoint_id AND w.type = ''
  OFFSET 0
) w
CROSS JOIN LATERAL (
  SELECT * FROM checkpoint_write_chunks x
  WHERE x.namespace = $1::text AND x.thread_id = p.thread_id AND x.checkpoint_ns = p.checkpoint_ns
    AND x.checkpoint_id = p.checkpoint_id AND x.task_id = w.task_id AND x.idx = w.idx
  OFFSET 0
) x
