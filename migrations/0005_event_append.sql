-- 0005_event_append: the result type of agentstate_event_append, AppendEvent
-- for a batch of appends in one autocommit statement.
--
-- This migration once also created agentstate_event_append. Its body now
-- lives in src/store/postgres/functions/ (applied with CREATE OR REPLACE after
-- the migrations at every release), so this file keeps schema only, as 0004
-- explains.

CREATE TYPE agentstate_event_append_result AS (
  idx int,
  status smallint,
  current_version bigint,
  first_version bigint,
  first_position bigint,
  revision bigint,
  fence_last bigint
);
