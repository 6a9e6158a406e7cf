-- 0014_checkpoint_write_chunks: pending writes above the value limit, in chunks.
--
-- A pending write whose value is larger than AGENTSTATE_MAX_VALUE_BYTES keeps
-- its row in checkpoint_writes (its identity: idempotency per task and index,
-- replacement of negative indexes, removal with its checkpoint), marked by the
-- empty type '' (a type tag no request may carry) and empty data; its value is
-- here, chunk 0, 1, ... of that size, each with the value's type. The row and
-- its chunks are written in one statement (agentstate_checkpoint_writes_put),
-- so a write is wholly present or absent.
--
-- Across a rolling upgrade: a replica of the previous release writes every
-- value whole into checkpoint_writes (its row's type is then not '', and
-- readers ignore any chunks left under that key); reading a chunked write it
-- returns the marker row (type '', no data), which a saver's serializer
-- refuses loudly instead of handing back part of a value.
CREATE TABLE checkpoint_write_chunks (
  namespace text NOT NULL,
  thread_id text NOT NULL,
  checkpoint_ns text NOT NULL,
  checkpoint_id text COLLATE "C" NOT NULL,
  task_id text COLLATE "C" NOT NULL,
  idx integer NOT NULL,
  chunk integer NOT NULL,
  type text NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx, chunk)
);
