-- 0012: agentstate_kv_write gains p_marked_by (the cache identity a write was
-- marked under; functions/agentstate_kv_write.sql), with a default, so that
-- replicas of older releases still running in a rolling upgrade call the new
-- function with their argument list, and are treated as not owning the cache
-- epoch. A parameter cannot be added by CREATE OR REPLACE: the old signature
-- goes here, and the function file creates the new one right after.
DROP FUNCTION IF EXISTS agentstate_kv_write(text[], bytea[], smallint[], bytea[], text[], bigint[], smallint[],
  bigint[], text[], bigint[], text[], bytea[], bigint[], bigint[], boolean[], boolean);
