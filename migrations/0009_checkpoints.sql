-- 0009_checkpoints: LangGraph-style checkpoints (CheckpointService, proto/agentstate/v1/checkpoint.proto).
-- Four tables, every primary key leading with namespace (partition-ready):
--   checkpoints        one row per checkpoint: the serialized document (without
--                      channel values), metadata, and the channel versions it references
--   checkpoint_blobs   channel values, stored ONCE per (thread, checkpoint ns, channel,
--                      version) and shared by every checkpoint referencing that version;
--                      a value above the value limit is split into chunks (chunk 0, 1, ...)
--   checkpoint_writes  pending writes, one row per (checkpoint, task id, index)
--   checkpoint_heads   one row per (thread, checkpoint ns): the head (greatest checkpoint
--                      id) and the number of checkpoints; puts and prunes of a thread meet
--                      on this row (strict mode compares the parent with it under FOR UPDATE)
CREATE TABLE checkpoints (
  namespace text NOT NULL,
  thread_id text NOT NULL,
  checkpoint_ns text NOT NULL,
  -- Byte order ("C"): ids compare the same in Postgres and in every client.
  checkpoint_id text COLLATE "C" NOT NULL,
  parent_checkpoint_id text COLLATE "C" NOT NULL,
  document_type text NOT NULL,
  document bytea NOT NULL,
  metadata jsonb NOT NULL,
  -- {channel: version} of every channel the checkpoint references (versions as text).
  channel_versions jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id)
);

-- The document a metadata filter is matched against: the metadata scoped by
-- namespace and thread, {"n": namespace, "t": thread_id, "m": metadata}, so one
-- GIN index serves a filter within a thread ({"n": ns, "t": thread, "m": filter})
-- and across a namespace ({"n": ns, "m": filter}) without scanning either.
-- Built from immutable functions only (jsonb_build_object is merely stable), as
-- an index expression must be; queries repeat the expression verbatim
-- (src/store/postgres/sql/checkpoint_list.sql, checkpoint_delete_for_runs.sql).
CREATE INDEX checkpoints_metadata ON checkpoints
  USING gin ((jsonb_set(jsonb_object(ARRAY['n', namespace, 't', thread_id]), '{m}', metadata)) jsonb_path_ops);
-- Newest first across the threads of a namespace (ListCheckpoints without a thread).
CREATE INDEX checkpoints_namespace_id ON checkpoints (namespace, checkpoint_id);
-- Retention by age (the Janitor).
CREATE INDEX checkpoints_created ON checkpoints (created_at);

CREATE TABLE checkpoint_blobs (
  namespace text NOT NULL,
  thread_id text NOT NULL,
  checkpoint_ns text NOT NULL,
  channel text NOT NULL,
  version text NOT NULL,
  chunk integer NOT NULL,
  type text NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (namespace, thread_id, checkpoint_ns, channel, version, chunk)
);

CREATE TABLE checkpoint_writes (
  namespace text NOT NULL,
  thread_id text NOT NULL,
  checkpoint_ns text NOT NULL,
  checkpoint_id text COLLATE "C" NOT NULL,
  task_id text COLLATE "C" NOT NULL,
  idx integer NOT NULL,
  task_path text COLLATE "C" NOT NULL,
  channel text NOT NULL,
  type text NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);

CREATE TABLE checkpoint_heads (
  namespace text NOT NULL,
  thread_id text NOT NULL,
  checkpoint_ns text NOT NULL,
  -- The greatest checkpoint id ('' while the thread and checkpoint ns have none).
  checkpoint_id text COLLATE "C" NOT NULL,
  checkpoints bigint NOT NULL,
  PRIMARY KEY (namespace, thread_id, checkpoint_ns)
);
-- The Janitor's keep-latest pass finds the threads over the count without a scan of checkpoints.
CREATE INDEX checkpoint_heads_count ON checkpoint_heads (checkpoints);
