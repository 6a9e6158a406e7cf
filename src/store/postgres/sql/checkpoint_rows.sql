-- checkpoint_rows: the rows of a page of checkpoints, the continuation of
-- checkpoint_list.sql, checkpoint_get_latest.sql and checkpoint_get_by_id.sql
-- (each a `page` CTE, then `-- continued in: checkpoint_rows`: sql.ts joins
-- them into one statement). `page` holds the page's checkpoints with their
-- `rank` (1 = newest); $1 is the namespace. Every lookup of values and writes
-- is a LATERAL subquery behind OFFSET 0, so it is run per row by its whole
-- key: joined, it was planned as one hash of the namespace's values (a read
-- grew with the namespace). The rows, told by `kind`: see checkpoint_list.sql.
refs AS (
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
