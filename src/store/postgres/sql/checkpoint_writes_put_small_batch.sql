-- checkpoint_writes_put_small_batch: several PutWrites calls of the kind
-- checkpoint_writes_put_small stores (every value within the value limit, the
-- call below the size check's threshold) in one statement: the PutWrites that
-- arrive while another batch is being written (group commit,
-- PostgresCheckpointStore.putWrites). Each call's writes are stored exactly as
-- checkpoint_writes_put_small stores them alone, and each call adds its own
-- audit row. No two calls of a batch share (namespace, thread, checkpoint ns,
-- checkpoint, task): the queue keeps them apart, so a row is never proposed
-- twice in one statement and the calls' counts below are their own.
-- Per call (one element each, in call order): $1 namespace, $2 thread_id,
-- $3 checkpoint_ns, $4 checkpoint_id, $5 task_id, $6 task_path, $7 principal,
-- $8 request_id text[]. Per write: $9 call int[] (its call's position in the
-- arrays above, from 1), $10 idx int[], $11 channel text[], $12 type text[],
-- $13 size int[]; $14 bytea: every write's data concatenated in that order.
-- Returns one row per call, in call order: `stored`, the writes inserted or replaced.
WITH c AS (
  SELECT *
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
    WITH ORDINALITY AS c(namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, principal,
                         request_id, call)
),
v AS (
  SELECT u.*, sum(u.size) OVER (ORDER BY u.ord) AS ends
  FROM unnest($9::int[], $10::int[], $11::text[], $12::text[], $13::int[])
    WITH ORDINALITY AS u(call, idx, channel, type, size, ord)
),
ins AS (
  INSERT INTO checkpoint_writes AS w (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path,
                                      channel, type, data)
  SELECT c.namespace, c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.task_id, v.idx, c.task_path, v.channel,
         v.type, substring($14::bytea FROM (v.ends - v.size + 1)::int FOR v.size)
  FROM v JOIN c ON c.call = v.call
  ORDER BY v.ord
  ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE
    SET task_path = excluded.task_path, channel = excluded.channel, type = excluded.type, data = excluded.data
    WHERE excluded.idx < 0
  RETURNING w.namespace, w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id
),
n AS (
  SELECT c.call, count(ins.task_id)::int AS stored
  FROM c LEFT JOIN ins
    ON (ins.namespace, ins.thread_id, ins.checkpoint_ns, ins.checkpoint_id, ins.task_id)
     = (c.namespace, c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.task_id)
  GROUP BY c.call
),
audit AS (
  INSERT INTO audit_changes (namespace, op, target, principal, request_id)
  SELECT c.namespace, 6, c.thread_id || '/' || c.checkpoint_ns || '/' || c.checkpoint_id, c.principal, c.request_id
  FROM c JOIN n ON n.call = c.call
  WHERE n.stored > 0
  ORDER BY c.call
)
SELECT stored FROM n ORDER BY call
