-- agentstate_checkpoint_writes_put(p_namespace, ..., p_max_bytes) -> TABLE (status, stored, bytes)
--
-- Promises: PutWrites in one statement (autocommit): one task's pending writes
-- on a checkpoint, each wholly stored or not at all, within the checkpoint's
-- size limit. PostgresCheckpointStore calls it for writes with a value above
-- the value limit or of at least 1/64 of the size limit; smaller ones go by
-- sql/checkpoint_writes_put_small.sql (no chunks, no check).
--
-- A write whose (checkpoint, task, idx) exists is kept as first written,
-- unless its idx is negative (LangGraph's special channels: error, scheduled,
-- interrupt, resume), which replaces it. A value above p_chunk_bytes (the
-- value limit) is stored in chunks (migrations/0014): its checkpoint_writes
-- row carries the marker type '' and no data, its chunks 0, 1, ... are in
-- checkpoint_write_chunks, written here with the row.
--
-- The size limit (p_max_bytes > 0): the checkpoint as a read returns it (its
-- document, metadata, channel versions, the channel values it references and
-- every pending write, counted as checkpointBytes in
-- src/grpc/checkpoints/codec.ts does, or a little more) must stay within
-- p_max_bytes, or nothing is written (status too_large): every pending write
-- accepted can be read back in one reply. Writers of one checkpoint take a
-- transaction advisory lock on it first, so concurrent calls cannot pass the
-- check together.
--
-- Parameters: the address (p_namespace, p_thread_id, p_checkpoint_ns,
-- p_checkpoint_id), p_task_id, p_task_path; one element per write: p_idx,
-- p_channel, p_type, p_size (bytes of its value); p_data: the values
-- concatenated in that order (one binary parameter, not a hex-encoded
-- bytea[]); p_chunk_bytes: the chunk size (values above it are chunked);
-- p_max_bytes: the limit (0: none).
-- Result: one row. status (the c_ constants; CheckpointWritesStatus in
-- src/store/postgres/writeStatus.ts): stored, or too_large (nothing written).
-- stored: writes inserted or replaced (those kept as they were are not
-- counted). bytes: the checkpoint's size with the writes, as counted for the
-- limit (NULL without one).
CREATE OR REPLACE FUNCTION agentstate_checkpoint_writes_put(
  p_namespace text,
  p_thread_id text,
  p_checkpoint_ns text,
  p_checkpoint_id text,
  p_task_id text,
  p_task_path text,
  p_idx int[],
  p_channel text[],
  p_type text[],
  p_size int[],
  p_data bytea,
  p_chunk_bytes int,
  p_max_bytes bigint
) RETURNS TABLE (status smallint, stored int, bytes bigint)
LANGUAGE plpgsql
-- Plan each statement once per session: its custom plans cost more to make
-- than the generic one (index probes by the whole key) costs to run.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  c_stored CONSTANT smallint := 1;
  c_too_large CONSTANT smallint := 2;
  -- Class (first key) of the transaction advisory lock writers of one
  -- checkpoint take: "ackw" in ASCII, apart from the other classes.
  c_writes_lock_class CONSTANT int := 1633905527;
  v_bytes bigint;
  v_stored int[];
BEGIN
  IF p_max_bytes > 0 THEN
    PERFORM pg_advisory_xact_lock(c_writes_lock_class,
      hashtext(p_namespace || E'\x1f' || p_thread_id || E'\x1f' || p_checkpoint_ns || E'\x1f' || p_checkpoint_id));
    SELECT
      -- The checkpoint, with the channel values it references (one index probe per channel).
      coalesce((
        -- A compressed document (type '', src/store/postgres/documentCodec.ts)
        -- counts as its size, the u32 (little-endian) after its type.
        SELECT 256 + CASE WHEN c.document_type = '' THEN
                       get_byte(c.document, 2 + get_byte(c.document, 1))
                       + get_byte(c.document, 3 + get_byte(c.document, 1)) * 256
                       + get_byte(c.document, 4 + get_byte(c.document, 1)) * 65536
                       + get_byte(c.document, 5 + get_byte(c.document, 1))::bigint * 16777216
                     ELSE octet_length(c.document) END
          + octet_length(c.metadata::text)
          + coalesce((SELECT sum(8 + octet_length(r.key) + octet_length(r.value) + coalesce(v.bytes, 0))
                      FROM jsonb_each_text(c.channel_versions) AS r
                      LEFT JOIN LATERAL (
                        -- A delta (migrations/0017) counts as its whole value (bytes, on chunk 0).
                        SELECT sum(64 + coalesce(b.bytes, octet_length(b.data)) + octet_length(b.channel)
                                   + octet_length(b.version)) AS bytes
                        FROM checkpoint_blobs b
                        WHERE b.namespace = c.namespace AND b.thread_id = c.thread_id
                          AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = r.key AND b.version = r.value) v ON true), 0)
        FROM checkpoints c
        WHERE c.namespace = p_namespace AND c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns
          AND c.checkpoint_id = p_checkpoint_id), 0)
      -- The pending writes it keeps (this task's negative indexes given here are
      -- replaced), a chunked one with its chunks.
      + coalesce((
        SELECT sum(64 + octet_length(w.data) + octet_length(w.channel) + octet_length(w.task_id)
                   + CASE WHEN w.type = '' THEN coalesce((
                       SELECT sum(octet_length(x.data)) FROM checkpoint_write_chunks x
                       WHERE x.namespace = w.namespace AND x.thread_id = w.thread_id AND x.checkpoint_ns = w.checkpoint_ns
                         AND x.checkpoint_id = w.checkpoint_id AND x.task_id = w.task_id AND x.idx = w.idx), 0)
                     ELSE 0 END)
        FROM checkpoint_writes w
        WHERE w.namespace = p_namespace AND w.thread_id = p_thread_id AND w.checkpoint_ns = p_checkpoint_ns
          AND w.checkpoint_id = p_checkpoint_id
          AND NOT (w.task_id = p_task_id AND w.idx < 0 AND w.idx = ANY (p_idx))), 0)
      -- The writes this call stores.
      + coalesce((
        SELECT sum(64 + u.size + octet_length(u.channel) + octet_length(p_task_id))
        FROM unnest(p_idx, p_channel, p_size) AS u(idx, channel, size)
        WHERE u.idx < 0 OR NOT EXISTS (
          SELECT 1 FROM checkpoint_writes w
          WHERE w.namespace = p_namespace AND w.thread_id = p_thread_id AND w.checkpoint_ns = p_checkpoint_ns
            AND w.checkpoint_id = p_checkpoint_id AND w.task_id = p_task_id AND w.idx = u.idx)), 0)
    INTO v_bytes;
    IF v_bytes > p_max_bytes THEN
      RETURN QUERY SELECT c_too_large, 0, v_bytes;
      RETURN;
    END IF;
  END IF;

  WITH v AS (
    SELECT u.*, sum(u.size) OVER (ORDER BY u.ord) - u.size AS start
    FROM unnest(p_idx, p_channel, p_type, p_size) WITH ORDINALITY AS u(idx, channel, type, size, ord)
  ), ins AS (
    INSERT INTO checkpoint_writes AS w (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path,
                                        channel, type, data)
    SELECT p_namespace, p_thread_id, p_checkpoint_ns, p_checkpoint_id, p_task_id, v.idx, p_task_path, v.channel,
           CASE WHEN v.size > p_chunk_bytes THEN '' ELSE v.type END,
           CASE WHEN v.size > p_chunk_bytes THEN ''::bytea ELSE substring(p_data FROM (v.start + 1)::int FOR v.size) END
    FROM v
    ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE
      SET task_path = excluded.task_path, channel = excluded.channel, type = excluded.type, data = excluded.data
      WHERE excluded.idx < 0
    RETURNING w.idx
  )
  SELECT array_agg(ins.idx) INTO v_stored FROM ins;

  -- Chunks: those of a replaced write go; a stored chunked write's are written.
  IF EXISTS (SELECT 1 FROM unnest(p_idx, p_size) AS u(idx, size)
             WHERE u.idx = ANY (v_stored) AND (u.idx < 0 OR u.size > p_chunk_bytes)) THEN
    DELETE FROM checkpoint_write_chunks x
    WHERE x.namespace = p_namespace AND x.thread_id = p_thread_id AND x.checkpoint_ns = p_checkpoint_ns
      AND x.checkpoint_id = p_checkpoint_id AND x.task_id = p_task_id AND x.idx = ANY (v_stored);
    INSERT INTO checkpoint_write_chunks (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx, chunk, type,
                                         data)
    SELECT p_namespace, p_thread_id, p_checkpoint_ns, p_checkpoint_id, p_task_id, v.idx, k, v.type,
           substring(p_data FROM (v.start + k::bigint * p_chunk_bytes + 1)::int
                     FOR least(p_chunk_bytes::bigint, v.size - k::bigint * p_chunk_bytes)::int)
    FROM (
      SELECT u.*, sum(u.size) OVER (ORDER BY u.ord) - u.size AS start
      FROM unnest(p_idx, p_type, p_size) WITH ORDINALITY AS u(idx, type, size, ord)
    ) v
    CROSS JOIN LATERAL generate_series(0, (v.size - 1) / p_chunk_bytes) AS k
    WHERE v.size > p_chunk_bytes AND v.idx = ANY (v_stored);
  END IF;

  RETURN QUERY SELECT c_stored, coalesce(cardinality(v_stored), 0), v_bytes;
END
$$;
