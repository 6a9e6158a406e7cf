-- agentstate_checkpoint_put(p_namespace, ..., p_blob_data) -> TABLE (status, created, head)
--
-- Promises: PutCheckpoint in one statement (autocommit): the checkpoint row,
-- the channel values new in it, and the head of its (thread, checkpoint ns),
-- all or nothing.
--
-- The head row (checkpoint_heads, migrations/0009) is claimed first (created
-- with head '' when the thread and checkpoint ns are new) and locked FOR
-- UPDATE: puts and prunes of one thread and checkpoint ns run one at a time,
-- so a prune never removes a channel value a concurrent put still references,
-- and strict mode compares the parent with the head no other put can move.
--
-- Strict mode (p_strict): the put is refused unless p_parent_id is the head
-- ('' = no checkpoint yet) or p_checkpoint_id already is (a retried put, a
-- replay); a new checkpoint's id must sort after the head's, so the head stays
-- the greatest id (what "latest" means). Without it, the head becomes the
-- greater of the two ids.
--
-- Release 4 had no deltas (no p_blob_base .. p_blob_bytes, migrations/0017):
-- a database brought from release 4 keeps that overload too, for replicas of
-- release 4 during a rolling upgrade (it stores whole values, which every
-- release reads).
--
-- Release 3 took the chunks' bytes as p_blob_data bytea[] (no p_blob_size).
-- A database brought from release 3 keeps that overload beside this one, so
-- replicas of release 3 go on calling it during a rolling upgrade (calls name
-- their parameters, so each release reaches its own); a later release's
-- migration drops it: DROP FUNCTION agentstate_checkpoint_put(text, text,
-- text, text, text, boolean, text, bytea, jsonb, jsonb, text[], text[],
-- int[], text[], bytea[]).
--
-- Channel values: one element per chunk in p_blob_channel .. p_blob_size
-- (chunk 0, 1, ... of one value share its channel, version and type); the
-- chunks' bytes are p_blob_data, concatenated in that order, p_blob_size[i]
-- bytes each (one binary parameter: a bytea[] would travel hex-encoded). A
-- (channel, version) already stored is kept: a version names one value.
-- Deltas (migrations/0017): a value stored as a delta of an earlier version
-- of its channel (PostgresCheckpointStore decides) has, on its chunk 0,
-- p_blob_base (that version), p_blob_base_crc (the CRC-32 of the base's whole
-- value as the caller knows it), p_blob_depth (1 + the base's depth) and
-- p_blob_bytes (its whole size); p_blob_crc is the CRC-32 of every stored
-- value's whole bytes (chunk 0), whole or delta; NULL elsewhere. A delta whose
-- base is not stored with that CRC and depth (removed, or another value under
-- that version since) refuses the put (status base_missing, nothing written):
-- the caller sends it again with whole values.
-- Parameters: the address (p_namespace, p_thread_id, p_checkpoint_ns,
-- p_checkpoint_id), p_parent_id ('' for none), p_strict, the document
-- (p_document_type, p_document), p_metadata, p_channel_versions
-- ({channel: version}), the chunks.
-- Result: one row. status (the c_ constants; CheckpointPutStatus in
-- src/store/postgres/writeStatus.ts): stored; conflict (strict, the parent is
-- not the head: nothing written, `head` is the head); not_after_head (strict,
-- the id does not sort after the head's: nothing written); base_missing (a
-- delta's base is not there: nothing written). created: the
-- checkpoint id was new. head: the head after the put (or the current one).
CREATE OR REPLACE FUNCTION agentstate_checkpoint_put(
  p_namespace text,
  p_thread_id text,
  p_checkpoint_ns text,
  p_checkpoint_id text,
  p_parent_id text,
  p_strict boolean,
  p_document_type text,
  p_document bytea,
  p_metadata jsonb,
  p_channel_versions jsonb,
  p_blob_channel text[],
  p_blob_version text[],
  p_blob_chunk int[],
  p_blob_type text[],
  p_blob_size int[],
  p_blob_data bytea,
  p_blob_base text[],
  p_blob_base_crc int[],
  p_blob_depth int[],
  p_blob_crc int[],
  p_blob_bytes int[]
) RETURNS TABLE (status smallint, created boolean, head text)
LANGUAGE plpgsql AS $$
DECLARE
  c_stored CONSTANT smallint := 1;
  c_conflict CONSTANT smallint := 2;
  c_not_after_head CONSTANT smallint := 3;
  c_base_missing CONSTANT smallint := 5;
  v_head text;
  v_created boolean;
BEGIN
  -- The row is there but for a thread's first put: lock it, else create it
  -- (another put may create it first) and lock it then. A prune that empties
  -- the thread removes the row while this put waits for it: then claim it again.
  LOOP
    SELECT h.checkpoint_id INTO v_head FROM checkpoint_heads h
    WHERE h.namespace = p_namespace AND h.thread_id = p_thread_id AND h.checkpoint_ns = p_checkpoint_ns
    FOR UPDATE;
    EXIT WHEN FOUND;
    INSERT INTO checkpoint_heads (namespace, thread_id, checkpoint_ns, checkpoint_id, checkpoints)
    VALUES (p_namespace, p_thread_id, p_checkpoint_ns, '', 0)
    ON CONFLICT DO NOTHING;
  END LOOP;

  IF p_strict AND v_head <> p_checkpoint_id THEN
    IF v_head <> p_parent_id THEN
      RETURN QUERY SELECT c_conflict, false, v_head;
      RETURN;
    END IF;
    IF p_checkpoint_id COLLATE "C" <= v_head COLLATE "C" THEN
      RETURN QUERY SELECT c_not_after_head, false, v_head;
      RETURN;
    END IF;
  END IF;

  -- Each delta's base, looked up by its whole key (one index probe per delta;
  -- a join here was planned as a scan of the thread's values, release 7).
  FOR i IN 1 .. coalesce(array_length(p_blob_base, 1), 0) LOOP
    CONTINUE WHEN p_blob_base[i] IS NULL;
    PERFORM FROM checkpoint_blobs b
    WHERE b.namespace = p_namespace AND b.thread_id = p_thread_id AND b.checkpoint_ns = p_checkpoint_ns
      AND b.channel = p_blob_channel[i] AND b.version = p_blob_base[i] AND b.chunk = 0
      AND b.crc = p_blob_base_crc[i] AND coalesce(b.depth, 0) = p_blob_depth[i] - 1;
    IF NOT FOUND THEN
      RETURN QUERY SELECT c_base_missing, false, v_head;
      RETURN;
    END IF;
  END LOOP;

  INSERT INTO checkpoint_blobs (namespace, thread_id, checkpoint_ns, channel, version, chunk, type, data, base, depth,
                                crc, bytes)
  SELECT p_namespace, p_thread_id, p_checkpoint_ns, b.channel, b.version, b.chunk, b.type,
         substring(p_blob_data FROM (b.ends - b.size + 1)::int FOR b.size), b.base, b.depth, b.crc, b.bytes
  FROM (
    SELECT u.*, sum(u.size) OVER (ORDER BY u.ord) AS ends
    FROM unnest(p_blob_channel, p_blob_version, p_blob_chunk, p_blob_type, p_blob_size, p_blob_base, p_blob_depth,
                p_blob_crc, p_blob_bytes) WITH ORDINALITY
      AS u(channel, version, chunk, type, size, base, depth, crc, bytes, ord)
  ) b
  ON CONFLICT DO NOTHING;

  INSERT INTO checkpoints AS c (namespace, thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                                document_type, document, metadata, channel_versions)
  VALUES (p_namespace, p_thread_id, p_checkpoint_ns, p_checkpoint_id, p_parent_id,
          p_document_type, p_document, p_metadata, p_channel_versions)
  ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id) DO UPDATE
    SET parent_checkpoint_id = excluded.parent_checkpoint_id, document_type = excluded.document_type,
        document = excluded.document, metadata = excluded.metadata, channel_versions = excluded.channel_versions
  RETURNING (c.xmax = 0) INTO v_created;

  UPDATE checkpoint_heads h
  SET checkpoint_id = CASE WHEN p_checkpoint_id COLLATE "C" > h.checkpoint_id COLLATE "C"
                           THEN p_checkpoint_id ELSE h.checkpoint_id END,
      checkpoints = h.checkpoints + CASE WHEN v_created THEN 1 ELSE 0 END
  WHERE h.namespace = p_namespace AND h.thread_id = p_thread_id AND h.checkpoint_ns = p_checkpoint_ns
  RETURNING h.checkpoint_id INTO v_head;

  RETURN QUERY SELECT c_stored, v_created, v_head;
END
$$;
