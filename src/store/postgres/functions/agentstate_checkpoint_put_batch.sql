-- agentstate_checkpoint_put_batch(p_namespace[], ..., p_wait) -> TABLE (idx, status, created, head)
-- Requires: agentstate_checkpoint_put
--
-- Promises: a batch of PutCheckpoints (server-side group commit), called in
-- autocommit: one round trip and one WAL flush serve puts of many threads.
-- Each put is agentstate_checkpoint_put's, with its own strict check and its
-- own result: a conflict or a refusal of one put writes nothing of it and
-- leaves the others as they are. The server puts at most one checkpoint per
-- (thread, checkpoint ns) in a batch and sorts the batch by them, so
-- concurrent batches claim head rows in one order.
--
-- With p_wait false, a put whose head row another transaction holds (a
-- prune, a put of another replica) does not wait for it: it is answered
-- `busy` with nothing written, and the server runs it alone with p_wait true,
-- which waits as a single put does. So one held thread never stalls the batch.
--
-- Parameters: one element per put in p_namespace .. p_document_size and
-- p_metadata .. p_blob_count (all of one length), as agentstate_checkpoint_put
-- names them; the documents' bytes concatenated in p_document, p_document_size[i]
-- bytes each; p_metadata and p_channel_versions as JSON text. The puts'
-- chunks of channel values one after the other: put i has the next
-- p_blob_count[i] elements of p_blob_channel .. p_blob_size and p_blob_base ..
-- p_blob_bytes (deltas, migrations/0017), whose bytes are the next ones of
-- p_blob_data. Release 4's overload (without p_blob_base .. p_blob_bytes)
-- stays in a database brought from release 4, for its replicas.
-- Result: one row per put, idx (1-based, the order given) with
-- agentstate_checkpoint_put's status, created and head; or status busy (4,
-- p_wait false only: nothing written, created false, head null).
CREATE OR REPLACE FUNCTION agentstate_checkpoint_put_batch(
  p_namespace text[],
  p_thread_id text[],
  p_checkpoint_ns text[],
  p_checkpoint_id text[],
  p_parent_id text[],
  p_strict boolean[],
  p_document_type text[],
  p_document_size int[],
  p_document bytea,
  p_metadata text[],
  p_channel_versions text[],
  p_blob_count int[],
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
  p_blob_bytes int[],
  p_wait boolean
) RETURNS TABLE (idx int, status smallint, created boolean, head text)
LANGUAGE plpgsql AS $$
DECLARE
  c_busy CONSTANT smallint := 4;
  v_doc_at int := 1;
  v_blob_at int := 1;
  v_data_at int := 1;
  v_n int;
  v_bytes int;
  r record;
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_namespace, 1), 0) LOOP
    v_n := p_blob_count[i];
    SELECT coalesce(sum(s), 0)::int INTO v_bytes FROM unnest(p_blob_size[v_blob_at : v_blob_at + v_n - 1]) s;
    IF NOT p_wait THEN
      -- Take the head row now if it is free; held elsewhere: busy.
      PERFORM 1 FROM checkpoint_heads h
      WHERE h.namespace = p_namespace[i] AND h.thread_id = p_thread_id[i] AND h.checkpoint_ns = p_checkpoint_ns[i]
      FOR UPDATE SKIP LOCKED;
      IF NOT FOUND AND EXISTS (
        SELECT 1 FROM checkpoint_heads h
        WHERE h.namespace = p_namespace[i] AND h.thread_id = p_thread_id[i] AND h.checkpoint_ns = p_checkpoint_ns[i]
      ) THEN
        idx := i;
        status := c_busy;
        created := false;
        head := NULL;
        RETURN NEXT;
        v_doc_at := v_doc_at + p_document_size[i];
        v_blob_at := v_blob_at + v_n;
        v_data_at := v_data_at + v_bytes;
        CONTINUE;
      END IF;
    END IF;
    SELECT * INTO r FROM agentstate_checkpoint_put(
      p_namespace => p_namespace[i], p_thread_id => p_thread_id[i], p_checkpoint_ns => p_checkpoint_ns[i],
      p_checkpoint_id => p_checkpoint_id[i], p_parent_id => p_parent_id[i], p_strict => p_strict[i],
      p_document_type => p_document_type[i],
      p_document => substring(p_document FROM v_doc_at FOR p_document_size[i]),
      p_metadata => p_metadata[i]::jsonb, p_channel_versions => p_channel_versions[i]::jsonb,
      p_blob_channel => p_blob_channel[v_blob_at : v_blob_at + v_n - 1],
      p_blob_version => p_blob_version[v_blob_at : v_blob_at + v_n - 1],
      p_blob_chunk => p_blob_chunk[v_blob_at : v_blob_at + v_n - 1],
      p_blob_type => p_blob_type[v_blob_at : v_blob_at + v_n - 1],
      p_blob_size => p_blob_size[v_blob_at : v_blob_at + v_n - 1],
      p_blob_data => substring(p_blob_data FROM v_data_at FOR v_bytes),
      p_blob_base => p_blob_base[v_blob_at : v_blob_at + v_n - 1],
      p_blob_base_crc => p_blob_base_crc[v_blob_at : v_blob_at + v_n - 1],
      p_blob_depth => p_blob_depth[v_blob_at : v_blob_at + v_n - 1],
      p_blob_crc => p_blob_crc[v_blob_at : v_blob_at + v_n - 1],
      p_blob_bytes => p_blob_bytes[v_blob_at : v_blob_at + v_n - 1]);
    idx := i;
    status := r.status;
    created := r.created;
    head := r.head;
    RETURN NEXT;
    v_doc_at := v_doc_at + p_document_size[i];
    v_blob_at := v_blob_at + v_n;
    v_data_at := v_data_at + v_bytes;
  END LOOP;
END
$$;
