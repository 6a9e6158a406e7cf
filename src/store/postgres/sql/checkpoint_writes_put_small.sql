-- checkpoint_writes_put_small: one PutWrites whose values are all within the
-- value limit and total less than the checkpoint size check's threshold
-- (PostgresCheckpointStore decides), stored without the check: the common
-- case, one plain statement (as release 3 stored every PutWrites).
-- $1 namespace, $2 thread_id, $3 checkpoint_ns, $4 checkpoint_id, $5 task_id,
-- $6 task_path text; one element per write: $7 idx int[], $8 channel text[],
-- $9 type text[], $10 size int[]; $11 bytea: the writes' data concatenated in
-- that order, size[i] bytes each (one binary parameter, not a hex-encoded bytea[]).
-- A write whose (checkpoint, task, idx) exists is kept as first written, unless
-- its idx is negative (LangGraph's special channels: error, scheduled,
-- interrupt, resume), which replaces it (a replaced chunked write's chunks
-- stay, unread: readers join chunks only under a row of type '', and
-- agentstate_checkpoint_writes_put or the checkpoint's removal clears them).
-- The audit trail: $12 principal, $13 request_id text; writes stored or
-- replaced add an audit_changes row (op 6, target
-- "thread/checkpoint_ns/checkpoint_id") in the same statement, as
-- checkpoint_writes_put does.
-- Returns `stored`: writes inserted or replaced.
WITH ins AS (
  INSERT INTO checkpoint_writes AS w (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path,
                                      channel, type, data)
  SELECT $1::text, $2::text, $3::text, $4::text, $5::text, v.idx, $6::text, v.channel, v.type,
         substring($11::bytea FROM (v.ends - v.size + 1)::int FOR v.size)
  FROM (
    SELECT u.*, sum(u.size) OVER (ORDER BY u.ord) AS ends
    FROM unnest($7::int[], $8::text[], $9::text[], $10::int[]) WITH ORDINALITY AS u(idx, channel, type, size, ord)
  ) v
  ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE
    SET task_path = excluded.task_path, channel = excluded.channel, type = excluded.type, data = excluded.data
    WHERE excluded.idx < 0
  RETURNING 1
),
n AS (SELECT count(*)::int AS stored FROM ins),
audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT $1::text, 6, $2::text || '/' || $3::text || '/' || $4::text, $12::text, $13::text
  FROM n WHERE n.stored > 0
)
SELECT stored FROM n
