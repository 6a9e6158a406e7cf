-- 0004_kv_write: the result type of agentstate_kv_write, the whole KV write
-- (CompareAndSet, Delete) for a batch of writes in one autocommit statement.
--
-- This migration once also created agentstate_item_json and agentstate_kv_write.
-- Their bodies now live in src/store/postgres/functions/ (one file per
-- function, applied with CREATE OR REPLACE after the migrations at every
-- release), so this file keeps schema only. Databases that applied the
-- original file have the functions already and simply get them replaced;
-- the ledger keeps no checksum, so stripping the bodies here changes nothing
-- for them, while a fresh database gets schema from here and logic from there.
-- The type stays here: a CREATE OR REPLACE FUNCTION cannot change it.

CREATE TYPE agentstate_kv_write_result AS (
  idx int,
  status smallint,
  revision bigint,
  key bytea,
  value bytea,
  content_type text,
  version bigint,
  create_revision bigint,
  mod_revision bigint,
  created_at timestamptz,
  updated_at timestamptz,
  expires_at timestamptz,
  outcome jsonb,
  fence_last bigint,
  bump_epoch bigint,
  bump_prev_age_ms bigint
);
