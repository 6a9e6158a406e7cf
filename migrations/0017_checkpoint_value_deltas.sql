-- 0017_checkpoint_value_deltas: channel values stored as deltas of an earlier version.
--
-- A channel that grows (a message list) was stored whole at every version, so
-- a thread's bytes grew with the square of its length. A value may now be
-- stored as a delta of an earlier version of the same channel in the same
-- thread and checkpoint ns (its `base`): the value is a head, a run of the
-- base's bytes, and a tail (src/store/postgres/valueDelta.ts). A delta's
-- base may be a delta itself, at most AGENTSTATE's delta chain bound deep
-- (PostgresCheckpointStore: a full value every K versions), so a read joins a
-- bounded chain (sql/checkpoint_list.sql). A base stays while a value that
-- needs it stays (agentstate_checkpoint_remove).
--
-- New columns (chunk 0 of a value carries them; NULL on the other chunks and
-- on every row written before this release, which stay as they are: full values):
--   base   the version this value is a delta of (NULL: the value is whole)
--   depth  the delta's place in its chain: 1 + its base's (NULL: whole, 0)
--   crc    CRC-32 of the whole value (signed), which a put that deltas
--          against this row names, so a stale base (another value under the
--          same version, after a delete) is refused, never built upon
--   bytes  the whole value's size (deltas only), for the checkpoint size limit
-- A delta's chunks carry the type '' (a type no request may carry: a replica
-- of an older release returns it, and a saver's serializer refuses it loudly
-- instead of decoding a delta as the value); the value's type is in the delta.
ALTER TABLE checkpoint_blobs
  ADD COLUMN base text,
  ADD COLUMN depth smallint,
  ADD COLUMN crc integer,
  ADD COLUMN bytes integer;
